"""RL training of the chain of thought (hard, soft, fuzzy; or multiplex, gumbel) with RLOO and exact densities.

Laptop (CPU, fp32):
    softcot train --config results/toy/configs/train.yaml model.name_or_path=results/toy/base \\
        data.train=results/toy/data/train.jsonl data.val=results/toy/data/val.jsonl mode.kind=soft steps=100
One node, 8 GPUs (bf16 autocast, DDP):
    accelerate launch --config_file profiles/accelerate/8gpu.yaml -m softcot.cli train --config train.yaml

`train()` is a driver over named phases that share one `_Run` state: set-up, resume, then per step
`_collect` (B prompts, G rollouts each, split over processes; rewards; leave-one-out advantages over all
processes), `_update` (teacher-forced rescoring and backward in micro-batches, softcot.loss; clipping;
AdamW with warm-up and cosine schedule), `_log_step`, and `_validate` / `_checkpoint` on their schedules.

Files. `ckpt_dir` (NOT a declared workflow output, so a retried job resumes) holds step checkpoints
(softcot.checkpoint), the best-validation weights `best/`, and the running logs `metrics.jsonl`
(deterministic per-step values), `timing.jsonl` (seconds), `val.jsonl`. At the end `output_dir` is
written atomically: `model/` (the best-validation checkpoint in Hugging Face format), copies of the
three logs, `config.yaml` (the resolved config) and `summary.json`.

SIGTERM / SIGUSR1 (SLURM's pre-timeout signal) make the trainer finish the step in flight, checkpoint
and exit with code 75, so that Snakemake's retries or SLURM's requeue resume the run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from softcot import __version__, rng
from softcot.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from softcot.config import ConfigError, load_config
from softcot.data import PromptSampler, Records, load_records
from softcot.distributed import (agree, full_params, gathered, grad_sq_sum, hf_state_dict, loadable,
                                 make_accelerator, prepare)
from softcot.evaluate import greedy_accuracy
from softcot.io import append_jsonl, atomic_dir, read_jsonl, write_json, write_text
from softcot.loss import Scorer, backward_microbatches, policy_loss, rloo_advantages
from softcot.modeling import load_model, synced_clock
from softcot.optim import make_optimizer
from softcot.progress import Progress
from softcot.prompt import build_prompt
from softcot.provenance import provenance
from softcot.rewards import CORRECT, call_reward, load_reward
from softcot.rollout import Rollout, rollout
from softcot.schema import DataConfig, OptimConfig, TrainConfig  # noqa: F401  (re-exported)

PREEMPTED_EXIT_CODE = 75   # EX_TEMPFAIL: "try again", for Snakemake retries and SLURM requeue
LOGS = ("metrics.jsonl", "timing.jsonl", "val.jsonl", "rollouts.jsonl")


class Preempted(Exception):
    pass


@dataclass
class _Run:
    """Everything the phases of one training run share."""
    cfg: TrainConfig
    acc: object                          # accelerate.Accelerator
    model: torch.nn.Module
    tok: object
    scorer: torch.nn.Module              # the Scorer, wrapped by accelerate (DDP on several processes)
    opt: torch.optim.Optimizer
    sched: object
    sampler: PromptSampler
    reward_fn: object
    train_recs: Records
    val_recs: list
    ckdir: Path
    start: int = 0
    best: dict = field(default_factory=lambda: {"step": -1, "score": -1.0})
    stop_signal: int | None = None
    nonfinite_run: int = 0
    nonfinite_total: int = 0

    @property
    def total(self) -> int:              # rollouts per step over all processes, B G
        return self.cfg.prompts_per_step * self.cfg.group_size

    @property
    def local_n(self) -> int:            # rollouts per step on this process
        return self.total // self.acc.num_processes

    @property
    def add_special_tokens(self) -> bool:
        return self.cfg.model.add_special_tokens and not self.cfg.model.chat_template


@dataclass
class _Batch:
    """One step's rollouts on this process, their records, rewards over all processes and advantages."""
    prompts: list[str]
    recs: list[dict]
    rollouts: list[Rollout]
    all_rewards: list
    adv: torch.Tensor
    seconds: dict


# --------------------------------------------------------------------------- set-up and resume

def _setup(cfg: TrainConfig, reward_fn=None) -> _Run:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_cuda = torch.cuda.is_available()
    acc = make_accelerator(cfg.strategy, mixed_precision=mixed_precision(cfg.precision, use_cuda), cpu=not use_cuda)
    total = cfg.prompts_per_step * cfg.group_size
    if total % acc.num_processes:
        raise ConfigError(f"prompts_per_step * group_size = {total} must divide by the {acc.num_processes} processes")
    torch.manual_seed(cfg.seed)
    model, tok = load_model(cfg.model, device=acc.device, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    reward_fn = reward_fn or load_reward(cfg.reward)
    train_recs = load_records(cfg.data.train, on_bad_row=cfg.data.on_bad_row)
    val_recs = load_records(cfg.data.val, on_bad_row=cfg.data.on_bad_row)[:cfg.data.val_size] if cfg.data.val else []
    scorer, opt, sched = prepare(acc, Scorer(model, chunk=cfg.head_chunk, checkpoint_head=use_cuda),
                                 lambda params: make_optimizer(params, cfg.optim, cfg.steps))
    ckdir = cfg.checkpoint_dir
    ckdir.mkdir(parents=True, exist_ok=True)
    return _Run(cfg=cfg, acc=acc, model=model, tok=tok, scorer=scorer, opt=opt, sched=sched,
                sampler=PromptSampler(len(train_recs), cfg.seed), reward_fn=reward_fn, train_recs=train_recs,
                val_recs=val_recs, ckdir=ckdir)


def mixed_precision(precision: str, use_cuda: bool) -> str:
    """accelerate's mixed_precision for `precision`: "auto" takes the accelerate config's setting (which
    `accelerate launch --config_file` exports as ACCELERATE_MIXED_PRECISION), else bf16 on GPU and none on CPU;
    "fp32" / "bf16" must agree with the accelerate config where one is set."""
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    want = {"auto": None, "fp32": "no", "bf16": "bf16"}[precision]
    if launched and want and launched != want:
        raise ConfigError(f"precision: {precision} conflicts with the accelerate config's mixed_precision: "
                          f"{launched}; set the same in both, or precision: auto to follow the accelerate config")
    return want or launched or ("bf16" if use_cuda else "no")


def _resume(run: _Run) -> None:
    """Restore the newest step checkpoint, if any, and drop what was logged after it; else start the logs."""
    acc, ckdir = run.acc, run.ckdir
    last = latest_checkpoint(ckdir)
    if last is None:
        if acc.is_main_process:
            for name in LOGS:
                (ckdir / name).unlink(missing_ok=True)
        return
    st = load_checkpoint(last, *loadable(acc, run.scorer, run.opt), run.sched)
    run.start = st["step"]
    run.sampler = PromptSampler(len(run.train_recs), run.cfg.seed, **st["extra"]["sampler"])
    run.best = st["extra"]["best"]
    if acc.is_main_process:
        for name in LOGS:
            p = ckdir / name
            if p.exists():
                keep = [r for r in read_jsonl(p) if r["step"] <= run.start]
                write_text(p, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
    acc.print(f"resumed from {last} at step {run.start}")


def _watch_signals(run: _Run) -> None:
    def on_signal(signum, _frame):
        run.stop_signal = signum
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, on_signal)


# --------------------------------------------------------------------------- one step

def _collect(run: _Run, step: int) -> _Batch:
    """Rollouts of this process's share of the step's B x G, their rewards, and the RLOO advantages.

    Rollout i of the step (prompt i // G, sample i % G) draws its randomness from rng.row_keys(seed, step,
    i // G, i % G), so the step's rollouts are the same however they are split over processes and batches."""
    cfg, acc, t0 = run.cfg, run.acc, synced_clock(run.acc.device)
    recs_step = [run.train_recs[i] for i in run.sampler.take(cfg.prompts_per_step)]
    lo = acc.process_index * run.local_n
    index = torch.arange(lo, lo + run.local_n)
    keys = rng.row_keys(cfg.seed, step, index // cfg.group_size, index % cfg.group_size)
    recs = [recs_step[g // cfg.group_size] for g in range(lo, lo + run.local_n)]
    prompts = [build_prompt(r["question"], cfg.data.prompt_template, run.tok, cfg.model.chat_template) for r in recs]
    run.model.eval()
    rollouts = []
    with acc.autocast(), full_params(acc, run.scorer):
        for s in range(0, run.local_n, cfg.rollout_batch):
            rollouts.append(rollout(run.model, run.tok, prompts[s:s + cfg.rollout_batch], cfg.mode, cfg.rollout,
                                    add_special_tokens=run.add_special_tokens, keys=keys[s:s + cfg.rollout_batch]))
    run.model.train()
    t1 = synced_clock(acc.device)
    completions = [c for ro in rollouts for c in ro.completions]
    ids = [c for ro in rollouts for c in ro.completion_ids]
    rewards = call_reward(run.reward_fn, prompts, completions, recs, completion_ids=ids)
    all_rewards = _gather_list(acc, rewards)
    adv_all = rloo_advantages(all_rewards, cfg.group_size)
    if cfg.shuffle_advantages:
        adv_all = adv_all[torch.randperm(len(adv_all), generator=torch.Generator().manual_seed(cfg.seed + step))]
    if cfg.log_rollouts and acc.is_main_process:
        append_jsonl(run.ckdir / "rollouts.jsonl", {"step": step + 1, "rewards": all_rewards,
                                                    "advantages": [round(float(a), 6) for a in adv_all]})
    return _Batch(prompts=prompts, recs=recs, rollouts=rollouts, all_rewards=all_rewards,
                  adv=adv_all[lo:lo + run.local_n],
                  seconds={"rollout_s": t1 - t0, "reward_s": synced_clock(acc.device) - t1})


def _update(run: _Run, batch: _Batch, step: int) -> dict:
    """Rescore and backpropagate in micro-batches, clip, and take the optimiser step if all is finite."""
    cfg, acc, world = run.cfg, run.acc, run.acc.num_processes
    diag = {}
    if cfg.diagnostics_every and step % cfg.diagnostics_every == 0:
        diag = _term_grad_norms(run, batch)
    stats = backward_microbatches(run.scorer, batch.rollouts, batch.adv, cfg.micro_batch,
                                  lambda t, a: policy_loss(t, a, run.total, cfg.cot_loss_weight), acc, scale=world)
    t3 = synced_clock(acc.device)
    max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else float("inf")
    grad_norm = float(acc.clip_grad_norm_(run.scorer.parameters(), max_norm))
    finite = math.isfinite(grad_norm) and math.isfinite(stats["loss"])
    if finite:
        run.opt.step()
        run.nonfinite_run = 0
    else:
        run.nonfinite_run += 1
        run.nonfinite_total += 1
    run.opt.zero_grad(set_to_none=True)
    run.sched.step()
    seconds = {"score_fwd_s": stats["forward_s"], "backward_s": stats["backward_s"],
               "optim_s": synced_clock(acc.device) - t3}
    return {**stats, **diag, "grad_norm": grad_norm, "finite": finite, "seconds": seconds}


def _term_grad_norms(run: _Run, batch: _Batch) -> dict:
    """Gradient norm of each loss term alone (diagnostics for the estimator's balance)."""
    out = {}
    for term in ("cot", "answer"):
        backward_microbatches(run.scorer, batch.rollouts, batch.adv, run.cfg.micro_batch,
                              lambda t, a, term=term: -(a.to(t[term].device) * t[term]).sum() / run.total, run.acc,
                              scale=run.acc.num_processes)     # as the loss: undo the processes' gradient mean
        params = list(run.scorer.parameters())
        out[f"grad_norm_{term}"] = math.sqrt(grad_sq_sum(run.acc, params))
        for p in params:
            p.grad = None
    return out


def _log_step(run: _Run, step: int, batch: _Batch, upd: dict, t0: float) -> dict:
    """Append the step's deterministic metrics (over all processes) and its timings (main process only);
    return the metrics."""
    cot_len = sum(float(ro.cot_len.sum()) for ro in batch.rollouts)
    ans_len = sum(float(ro.answer_len.sum()) for ro in batch.rollouts)
    marker = sum(sum(ro.stopped_by_marker) for ro in batch.rollouts)
    sums = torch.tensor([cot_len, ans_len, marker, upd["cot"], upd["answer"], upd["loss"]], dtype=torch.float64,
                        device=run.acc.device)
    if run.acc.num_processes > 1:
        sums = run.acc.reduce(sums, reduction="sum")
    cot_len, ans_len, marker, cot, answer, loss = sums.tolist()
    row = _step_metrics(batch.all_rewards, run.cfg.group_size)
    diag = {k: v for k, v in upd.items() if k.startswith("grad_norm_")}
    n = run.total
    row.update(step=step + 1, lr=run.sched.get_last_lr()[0], grad_norm=upd["grad_norm"], loss=loss,
               logp_cot=cot / n, logp_answer=answer / n, cot_len=cot_len / n, answer_len=ans_len / n,
               marker_rate=marker / n, nonfinite_skipped=run.nonfinite_total, **diag)
    row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
    if run.acc.is_main_process:
        append_jsonl(run.ckdir / "metrics.jsonl", row)
        append_jsonl(run.ckdir / "timing.jsonl", {"step": step + 1, **batch.seconds, **upd["seconds"],
                                                  "step_s": synced_clock(run.acc.device) - t0})
    return row


def _step_metrics(rewards: list, group_size: int) -> dict:
    valid = [r for r in rewards if r is not None]
    t = torch.tensor(valid or [0.0], dtype=torch.float64)
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    equal = sum(len({r for r in g if r is not None}) <= 1 for g in groups)
    return {"reward_mean": float(t.mean()), "reward_std": float(t.std()) if len(valid) > 1 else 0.0,
            "pass_rate": sum(r == CORRECT for r in valid) / max(1, len(valid)),
            "frac_equal_groups": equal / len(groups), "no_reward": len(rewards) - len(valid)}


def _gather_list(acc, values: list) -> list:
    if acc.num_processes == 1:
        return list(values)
    from accelerate.utils import gather_object
    return list(gather_object(list(values)))


# --------------------------------------------------------------------------- validation, checkpoints, the end

def _validate(run: _Run, step: int) -> None:
    """Greedy validation; the best-scoring weights replace `best/` atomically."""
    cfg, acc = run.cfg, run.acc
    if not run.val_recs:
        return
    run.model.eval()
    with acc.autocast(), full_params(acc, run.scorer):
        score = greedy_accuracy(run.model, run.tok, run.val_recs, cfg.mode, cfg.rollout, cfg.data.prompt_template,
                                batch=cfg.rollout_batch, chat_template=cfg.model.chat_template,
                                add_special_tokens=run.add_special_tokens, reward_fn=run.reward_fn)
    run.model.train()
    improved = agree(acc, score > run.best["score"])
    state = hf_state_dict(acc, run.scorer) if improved else None      # a collective under FSDP
    if not acc.is_main_process:
        return
    append_jsonl(run.ckdir / "val.jsonl", {"step": step, "greedy_pass1": score})
    if improved:
        run.best.update(step=step, score=score)
        with atomic_dir(run.ckdir / "best") as tmp:
            acc.unwrap_model(run.scorer).model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            run.tok.save_pretrained(tmp)
            write_json(tmp / "best.json", run.best)


def _checkpoint(run: _Run, step: int) -> None:
    run.acc.wait_for_everyone()
    model, opt = gathered(run.acc, run.scorer, run.opt)              # a collective under FSDP
    if run.acc.is_main_process:
        save_checkpoint(run.ckdir, step, model, opt, run.sched,
                        extra={"sampler": run.sampler.state(), "best": run.best}, keep=run.cfg.keep_checkpoints)


def _finish(run: _Run) -> dict:
    """Write `output_dir` atomically: the best model, the logs, the resolved config and the summary."""
    cfg, acc, ckdir = run.cfg, run.acc, run.ckdir
    acc.wait_for_everyone()
    summary = {"best_step": run.best["step"], "best_val_greedy_pass1": run.best["score"], "steps": cfg.steps,
               "skipped_train_rows": len(run.train_recs.skipped), "processes": acc.num_processes,
               "mode": asdict(cfg.mode), "seed": cfg.seed, "softcot_version": __version__, **provenance()}
    state = hf_state_dict(acc, run.scorer) if not (ckdir / "best").exists() else None   # collective (FSDP)
    if acc.is_main_process:
        with atomic_dir(cfg.output_dir) as tmp:
            model_dir = tmp / "model"
            if (ckdir / "best").exists():
                shutil.copytree(ckdir / "best", model_dir)
            else:
                acc.unwrap_model(run.scorer).model.save_pretrained(model_dir, state_dict=state, safe_serialization=True)
                run.tok.save_pretrained(model_dir)
            for name in LOGS:
                src = ckdir / name
                if src.exists() or name != "rollouts.jsonl":
                    (tmp / name).write_text(src.read_text() if src.exists() else "")
            (tmp / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=True))
            write_json(tmp / "summary.json", summary)
    return summary


# --------------------------------------------------------------------------- the driver

def train(cfg: TrainConfig, reward_fn=None, progress: bool = True) -> dict:
    """Run (or resume) training; `reward_fn` overrides cfg.reward with a callable. Returns the summary."""
    run = _setup(cfg, reward_fn)
    _resume(run)
    _watch_signals(run)
    if run.start == 0:
        _validate(run, 0)
    bar = Progress(cfg.steps, f"train {cfg.mode.kind}", unit="step", initial=run.start,
                   enabled=progress and run.acc.is_main_process)
    for step in range(run.start, cfg.steps):
        t0 = synced_clock(run.acc.device)
        batch = _collect(run, step)
        upd = _update(run, batch, step)
        row = _log_step(run, step, batch, upd, t0)
        if run.nonfinite_run > cfg.max_nonfinite_steps:
            raise RuntimeError(f"{run.nonfinite_run} consecutive steps had a non-finite loss or gradient (last at "
                               f"step {step + 1}); the last good checkpoint is {latest_checkpoint(run.ckdir)}. "
                               f"Lower optim.lr, set optim.grad_clip, or check the data.")
        bar.update(1, reward=f"{row['reward_mean']:.1f}", pass1=f"{row['pass_rate']:.2f}",
                   grad_norm=f"{upd['grad_norm']:.2g}")
        done = step + 1
        stop = _any_process(run.acc, run.stop_signal is not None)   # every process stops at the same step
        if done % cfg.eval_every == 0 or done == cfg.steps:
            _validate(run, done)
        if upd["finite"] and (done % cfg.save_every == 0 or done == cfg.steps or stop):
            _checkpoint(run, done)
        if stop:
            bar.close()
            run.acc.print(f"received signal {run.stop_signal or 'on another process'}: checkpointed step {done}; "
                          f"exiting {PREEMPTED_EXIT_CODE} to be resumed")
            raise Preempted()
    bar.close()
    return _finish(run)


def _any_process(acc, flag: bool) -> bool:
    """True on every process if `flag` is true on any (one small all-reduce per step)."""
    if acc.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
    return bool(acc.reduce(t, reduction="sum").item() > 0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML file with TrainConfig keys")
    ap.add_argument("--section", default=None, help="read only this top-level section of the YAML")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. mode.kind=soft steps=100")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    cfg = load_config(TrainConfig, args.config, args.overrides, section=args.section)
    try:
        summary = train(cfg, progress=not args.no_progress)
    except Preempted:
        return PREEMPTED_EXIT_CODE
    print(json.dumps(summary, indent=2))
    return 0
