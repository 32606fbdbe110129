"""RL training of the chain of thought (hard, soft or fuzzy) with RLOO and exact densities.

Laptop (CPU, fp32):
    softcot train --config config/train.yaml mode=soft steps=100
One node, 8 GPUs (bf16 autocast, DDP):
    accelerate launch --config_file profiles/accelerate/8gpu.yaml -m softcot.cli train --config preset.yaml

Each step: draw B prompts, G rollouts each (split over processes), score them with the reward, compute
leave-one-out advantages over all processes, rescore the rollouts teacher-forced (loss.Scorer), backward
in micro-batches, clip (optional), AdamW + cosine schedule with warm-up.

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
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml

from softcot import __version__
from softcot.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from softcot.config import ConfigError, cli_error, load_config, require
from softcot.io import append_jsonl, atomic_dir, read_jsonl, write_json, write_text
from softcot.loss import Scorer, policy_loss, rloo_advantages
from softcot.modeling import ModelConfig, load_model
from softcot.modes import CoTMode
from softcot.prompt import PAPER_PROMPT, build_prompt, resolve_template
from softcot.rewards import CORRECT, load_reward
from softcot.rollout import RolloutConfig, rollout

PREEMPTED_EXIT_CODE = 75   # EX_TEMPFAIL: "try again", for Snakemake retries and SLURM requeue


@dataclass
class DataConfig:
    train: str = ""                      # JSONL records {id, question, answer, ...}
    val: str | None = None               # JSONL records for greedy validation (None: no validation)
    val_size: int = 64
    prompt_template: str = PAPER_PROMPT
    on_bad_row: Literal["error", "skip"] = "error"

    def validate(self, prefix: str = "") -> None:
        require(bool(self.train), prefix + "train", "required: a JSONL file of {id, question, answer} records")
        require(Path(self.train).exists(), prefix + "train", f"{self.train!r} does not exist")
        require(self.val is None or Path(self.val).exists(), prefix + "val", f"{self.val!r} does not exist")
        require(self.val_size >= 1, prefix + "val_size", f"got {self.val_size}; must be >= 1")
        require("{question}" in resolve_template(self.prompt_template), prefix + "prompt_template",
                "must contain {question}, or be an alias: paper | toy")


@dataclass
class OptimConfig:
    lr: float = 6e-6                     # paper: 6e-6 Llama 3B, 3e-6 Llama 8B, 8e-6 Qwen 3B
    warmup_steps: int = 20               # paper: 20
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0            # OPEN in the paper
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])   # OPEN
    eps: float = 1e-8
    grad_clip: float | None = None       # OPEN: the paper does not say; None = no clipping

    def validate(self, prefix: str = "") -> None:
        require(self.lr > 0, prefix + "lr", f"got {self.lr}; must be > 0")
        require(self.warmup_steps >= 0, prefix + "warmup_steps", f"got {self.warmup_steps}; must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), prefix + "betas",
                f"got {self.betas}; two numbers in [0, 1)")
        require(self.grad_clip is None or self.grad_clip > 0, prefix + "grad_clip",
                f"got {self.grad_clip}; > 0, or null for no clipping")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    mode: CoTMode = field(default_factory=CoTMode)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 4000                    # paper: 4,000
    prompts_per_step: int = 2            # B, paper: 2
    group_size: int = 32                 # G, paper: 32
    rollout_batch: int = 64              # rollouts generated at once per process
    micro_batch: int = 8                 # rollouts per forward/backward
    seed: int = 0
    output_dir: str = "results/train/run"
    ckpt_dir: str | None = None          # default: <output_dir>.ckpt
    save_every: int = 50
    keep_checkpoints: int = 2
    eval_every: int = 50
    precision: Literal["auto", "fp32", "bf16"] = "auto"     # auto: bf16 autocast on GPU, fp32 on CPU
    reward: str = "softcot.rewards:math_reward"
    max_nonfinite_steps: int = 5         # consecutive skipped steps before the run stops
    threads: int | None = None           # torch CPU threads
    gradient_checkpointing: bool = False
    head_chunk: int = 4096               # scored positions per LM-head chunk in the loss
    diagnostics_every: int = 0           # every N steps log each loss term's gradient norm (costs 2 backwards)
    # Options beyond the paper (off by default):
    cot_loss_weight: float = 1.0         # weight of the CoT log-prob term
    shuffle_advantages: bool = False     # null control: advantages permuted within the step (no signal)

    def validate(self, prefix: str = "") -> None:
        require(not self.mode.greedy, prefix + "mode.greedy", "training samples its CoTs; greedy: false")
        for key in ("steps", "prompts_per_step", "group_size", "rollout_batch", "micro_batch", "save_every",
                    "eval_every", "keep_checkpoints", "max_nonfinite_steps", "head_chunk"):
            require(getattr(self, key) >= 1, prefix + key, f"got {getattr(self, key)}; must be >= 1")
        require(self.group_size >= 2, prefix + "group_size", f"got {self.group_size}; RLOO needs >= 2 rollouts per prompt")
        require(self.threads is None or self.threads >= 1, prefix + "threads", "must be >= 1 or null")
        require(self.diagnostics_every >= 0, prefix + "diagnostics_every", "must be >= 0")

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(str(self.output_dir).rstrip("/") + ".ckpt")


# --------------------------------------------------------------------------- data

class RecordList(list):
    """Records plus `skipped`, the number of malformed rows excluded with on_bad_row: skip."""
    skipped = 0


def load_records(path: str, on_bad_row: str = "error", need=("question", "answer")) -> RecordList:
    rows, out = read_jsonl(path), RecordList()
    for i, r in enumerate(rows, 1):
        missing = [k for k in need if r.get(k) is None or not str(r.get(k)).strip()]
        if missing:
            if on_bad_row == "skip":
                out.skipped += 1
                continue
            raise ConfigError(f"{path}, row {i}: missing or empty {', '.join(missing)}; fix the row, or set "
                              f"data.on_bad_row: skip to count and exclude such rows")
        out.append(r)
    if not out:
        raise ConfigError(f"{path}: no usable rows")
    return out


class PromptSampler:
    """Deterministic epochs of shuffled indices; the position (epoch, index) is checkpointed."""

    def __init__(self, n: int, seed: int, epoch: int = 0, index: int = 0):
        self.n, self.seed, self.epoch, self.index = n, seed, epoch, index
        self._perm = self._make_perm()

    def _make_perm(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.index >= self.n:
                self.epoch, self.index = self.epoch + 1, 0
                self._perm = self._make_perm()
            out.append(self._perm[self.index])
            self.index += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}


def lr_lambda(cfg: OptimConfig, total_steps: int):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


# --------------------------------------------------------------------------- validation

@torch.no_grad()
def greedy_accuracy(model, tok, records: list[dict], mode: CoTMode, rcfg: RolloutConfig, template: str,
                    batch: int = 64, chat_template: bool = False, add_special_tokens: bool = True,
                    reward_fn=None) -> float:
    """Fraction of `records` solved with greedy CoT (sigma = 0 for soft/fuzzy) and greedy answers."""
    from softcot.rewards import math_reward
    reward_fn = reward_fn or math_reward
    mode = mode.replace(greedy=True)
    rcfg = RolloutConfig(**{**asdict(rcfg), "answer_temperature": 0.0, "record_entropy": False})
    solved = 0
    for s in range(0, len(records), batch):
        recs = records[s:s + batch]
        prompts = [build_prompt(r["question"], template, tok, chat_template) for r in recs]
        ro = rollout(model, tok, prompts, mode, rcfg, add_special_tokens=add_special_tokens)
        rewards = reward_fn(prompts, ro.completions, **_columns(recs))
        solved += sum(r == CORRECT for r in rewards)
    return solved / max(1, len(records))


def _columns(recs: list[dict]) -> dict[str, list]:
    keys = set().union(*(r.keys() for r in recs))
    return {k: [r.get(k) for r in recs] for k in keys if k not in ("prompts", "completions")}


# --------------------------------------------------------------------------- the loop

class Preempted(Exception):
    pass


def train(cfg: TrainConfig, overrides_text: str = "", reward_fn=None) -> dict:
    """Run (or resume) training; `reward_fn` overrides cfg.reward with a callable."""
    from accelerate import Accelerator

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_cuda = torch.cuda.is_available()
    mixed = {"auto": "bf16" if use_cuda else "no", "fp32": "no", "bf16": "bf16"}[cfg.precision]
    acc = Accelerator(mixed_precision=mixed, cpu=not use_cuda)
    rank, world = acc.process_index, acc.num_processes
    total = cfg.prompts_per_step * cfg.group_size
    if total % world:
        raise ConfigError(f"prompts_per_step * group_size = {total} must divide by the {world} processes")
    local_n = total // world
    torch.manual_seed(cfg.seed)

    model, tok = load_model(cfg.model, device=acc.device, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    reward_fn = reward_fn or load_reward(cfg.reward)
    train_recs = load_records(cfg.data.train, cfg.data.on_bad_row)
    val_recs = load_records(cfg.data.val, cfg.data.on_bad_row)[:cfg.data.val_size] if cfg.data.val else []

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                            weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.optim, cfg.steps))
    scorer = Scorer(model, chunk=cfg.head_chunk, checkpoint_head=use_cuda)
    scorer, opt = acc.prepare(scorer, opt)
    gen = torch.Generator(device=acc.device).manual_seed(cfg.seed * 1000 + rank)
    sampler = PromptSampler(len(train_recs), cfg.seed)

    ckdir = cfg.checkpoint_dir
    ckdir.mkdir(parents=True, exist_ok=True)
    metrics_path, timing_path, val_path = ckdir / "metrics.jsonl", ckdir / "timing.jsonl", ckdir / "val.jsonl"
    start, best = 0, {"step": -1, "score": -1.0}
    last = latest_checkpoint(ckdir)
    if last is not None:
        st = load_checkpoint(last, acc.unwrap_model(scorer).model, opt, sched, {"rollout": gen})
        start = st["step"]
        sampler = PromptSampler(len(train_recs), cfg.seed, **st["extra"]["sampler"])
        best = st["extra"]["best"]
        for p in (metrics_path, timing_path, val_path):      # drop what was logged after that checkpoint
            if p.exists() and acc.is_main_process:
                keep = [r for r in read_jsonl(p) if r["step"] <= start]
                write_text(p, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
        acc.print(f"resumed from {last} at step {start}")
    elif acc.is_main_process:
        for p in (metrics_path, timing_path, val_path):
            p.unlink(missing_ok=True)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, on_signal)

    def validate(step: int):
        if not val_recs:
            return
        model.eval()
        with acc.autocast():
            score = greedy_accuracy(model, tok, val_recs, cfg.mode, cfg.rollout, cfg.data.prompt_template,
                                    batch=cfg.rollout_batch, chat_template=cfg.model.chat_template,
                                    add_special_tokens=cfg.model.add_special_tokens and not cfg.model.chat_template,
                                    reward_fn=reward_fn)
        model.train()
        if acc.is_main_process:
            append_jsonl(val_path, {"step": step, "greedy_pass1": score})
            if score > best["score"]:
                best.update(step=step, score=score)
                acc.unwrap_model(scorer).model.save_pretrained(ckdir / "best.tmp", safe_serialization=True)
                tok.save_pretrained(ckdir / "best.tmp")
                write_json(ckdir / "best.tmp" / "best.json", best)
                if (ckdir / "best").exists():
                    os.replace(ckdir / "best", ckdir / "best.old")
                os.replace(ckdir / "best.tmp", ckdir / "best")
                import shutil
                shutil.rmtree(ckdir / "best.old", ignore_errors=True)

    def checkpoint(step: int):
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_checkpoint(ckdir, step, acc.unwrap_model(scorer).model, opt, sched, {"rollout": gen},
                            {"sampler": sampler.state(), "best": best}, keep=cfg.keep_checkpoints)

    if start == 0:
        validate(0)
    nonfinite_run, nonfinite_total = 0, 0
    add_special = cfg.model.add_special_tokens and not cfg.model.chat_template
    from tqdm import tqdm
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"train {cfg.mode.kind}",
               disable=not acc.is_main_process, dynamic_ncols=True)
    cuda = acc.device.type == "cuda"

    def clock() -> float:
        """Wall time after the device has finished its queued work, so each phase is timed whole on a GPU."""
        if cuda:
            torch.cuda.synchronize(acc.device)
        return time.perf_counter()

    for step in bar:
        t0 = clock()
        idx = sampler.take(cfg.prompts_per_step)
        recs = [train_recs[i] for i in idx]
        lo = rank * local_n
        my = [(g // cfg.group_size) for g in range(lo, lo + local_n)]     # prompt index of each local rollout
        prompts = [build_prompt(recs[i]["question"], cfg.data.prompt_template, tok, cfg.model.chat_template) for i in my]
        # ---- rollouts (no grad) and rewards
        model.eval()
        rollouts = []
        with acc.autocast():
            for s in range(0, local_n, cfg.rollout_batch):
                rollouts.append(rollout(model, tok, prompts[s:s + cfg.rollout_batch], cfg.mode, cfg.rollout,
                                        generator=gen, add_special_tokens=add_special))
        model.train()
        t1 = clock()
        completions = [c for ro in rollouts for c in ro.completions]
        cols = _columns([recs[i] for i in my])
        rewards = reward_fn(prompts, completions, **cols)
        all_rewards = _gather_list(acc, rewards)
        adv_all = rloo_advantages(all_rewards, cfg.group_size)
        if cfg.shuffle_advantages:
            adv_all = adv_all[torch.randperm(len(adv_all), generator=torch.Generator().manual_seed(cfg.seed + step))]
        adv = adv_all[lo:lo + local_n]
        t2 = clock()
        # ---- teacher-forced rescoring and backward, in micro-batches
        diag = {}
        if cfg.diagnostics_every and step % cfg.diagnostics_every == 0:
            diag = _term_grad_norms(acc, scorer, rollouts, adv, cfg, total)
        stats = {"cot": 0.0, "answer": 0.0, "loss": 0.0}
        chunks = [(ro, list(range(s, min(s + cfg.micro_batch, len(ro))))) for ro in rollouts
                  for s in range(0, len(ro), cfg.micro_batch)]
        offset = 0
        t_fwd = t_bwd = 0.0
        for ci, (ro, rows) in enumerate(chunks):
            sub = ro.select(rows)
            a = adv[offset:offset + len(rows)]
            offset += len(rows)
            sync = ci == len(chunks) - 1
            ctx = acc.no_sync(scorer) if not sync and world > 1 else _null()
            with ctx:
                ta = clock()
                with acc.autocast():
                    terms = scorer(sub)
                    loss = policy_loss(terms, a, total, cfg.cot_loss_weight) * world
                tb = clock()
                acc.backward(loss)
                t_bwd += clock() - tb
                t_fwd += tb - ta
            stats["cot"] += float(terms["cot"].detach().sum())
            stats["answer"] += float(terms["answer"].detach().sum())
            stats["loss"] += float(loss.detach()) / world
        t3 = clock()
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else float("inf")
        grad_norm = float(acc.clip_grad_norm_(scorer.parameters(), max_norm))
        finite = math.isfinite(grad_norm) and math.isfinite(stats["loss"])
        if finite:
            opt.step()
            nonfinite_run = 0
        else:
            nonfinite_run += 1
            nonfinite_total += 1
        opt.zero_grad(set_to_none=True)
        sched.step()
        t4 = clock()
        # ---- logging (deterministic values in metrics.jsonl, seconds in timing.jsonl)
        cot_len = torch.cat([ro.cot_len.float().cpu() for ro in rollouts])
        ans_len = torch.cat([ro.answer_len.float().cpu() for ro in rollouts])
        marker = [m for ro in rollouts for m in ro.stopped_by_marker]
        row = _step_metrics(all_rewards, cfg.group_size)
        row.update(step=step + 1, lr=sched.get_last_lr()[0], grad_norm=grad_norm, loss=stats["loss"],
                   logp_cot=stats["cot"] / local_n, logp_answer=stats["answer"] / local_n,
                   cot_len=float(cot_len.mean()), answer_len=float(ans_len.mean()),
                   marker_rate=sum(marker) / len(marker), nonfinite_skipped=nonfinite_total, **diag)
        row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
        if acc.is_main_process:
            append_jsonl(metrics_path, row)
            append_jsonl(timing_path, {"step": step + 1, "rollout_s": t1 - t0, "reward_s": t2 - t1,
                                       "score_fwd_s": t_fwd, "backward_s": t_bwd, "optim_s": t4 - t3,
                                       "step_s": t4 - t0})
        if nonfinite_run > cfg.max_nonfinite_steps:
            raise RuntimeError(f"{nonfinite_run} consecutive steps had a non-finite loss or gradient (last at step "
                               f"{step + 1}); the last good checkpoint is {latest_checkpoint(ckdir)}. Lower optim.lr, "
                               f"set optim.grad_clip, or check the data.")

        bar.set_postfix(reward=f"{row['reward_mean']:.1f}", pass1=f"{row['pass_rate']:.2f}", gn=f"{grad_norm:.2g}")
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            validate(done)
        if finite and (done % cfg.save_every == 0 or done == cfg.steps or stop["signal"]):
            checkpoint(done)
        if stop["signal"]:
            acc.print(f"received signal {stop['signal']}: checkpointed step {done}; exiting {PREEMPTED_EXIT_CODE} to be resumed")
            raise Preempted()
    bar.close()
    return _finish(cfg, acc, scorer, tok, ckdir, best, overrides_text, train_recs.skipped)


def _finish(cfg, acc, scorer, tok, ckdir: Path, best: dict, overrides_text: str, skipped: int = 0) -> dict:
    acc.wait_for_everyone()
    summary = {"best_step": best["step"], "best_val_greedy_pass1": best["score"], "steps": cfg.steps,
               "skipped_train_rows": skipped,
               "mode": asdict(cfg.mode), "seed": cfg.seed, "softcot_version": __version__}
    if acc.is_main_process:
        with atomic_dir(cfg.output_dir) as tmp:
            model_dir = tmp / "model"
            if (ckdir / "best").exists():
                import shutil
                shutil.copytree(ckdir / "best", model_dir)
            else:
                acc.unwrap_model(scorer).model.save_pretrained(model_dir, safe_serialization=True)
                tok.save_pretrained(model_dir)
            for name in ("metrics.jsonl", "timing.jsonl", "val.jsonl"):
                src = ckdir / name
                (tmp / name).write_text(src.read_text() if src.exists() else "")
            (tmp / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=True))
            write_json(tmp / "summary.json", summary)
    return summary


def _step_metrics(rewards: list, group_size: int) -> dict:
    valid = [r for r in rewards if r is not None]
    t = torch.tensor(valid or [0.0], dtype=torch.float64)
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    equal = sum(len({r for r in g if r is not None}) <= 1 for g in groups)
    return {"reward_mean": float(t.mean()), "reward_std": float(t.std()) if len(valid) > 1 else 0.0,
            "pass_rate": sum(r == CORRECT for r in valid) / max(1, len(valid)),
            "frac_equal_groups": equal / len(groups), "no_reward": len(rewards) - len(valid)}


def _term_grad_norms(acc, scorer, rollouts, adv, cfg, total) -> dict:
    """Gradient norm of each loss term alone (diagnostics for the estimator's balance)."""
    out = {}
    for term in ("cot", "answer"):
        offset = 0
        for ro in rollouts:
            for s in range(0, len(ro), cfg.micro_batch):
                rows = list(range(s, min(s + cfg.micro_batch, len(ro))))
                a = adv[offset:offset + len(rows)]
                offset += len(rows)
                with acc.autocast():
                    terms = scorer(ro.select(rows))
                    loss = -(a.to(terms[term].device) * terms[term]).sum() / total
                acc.backward(loss)
        sq = sum(float(p.grad.float().pow(2).sum()) for p in scorer.parameters() if p.grad is not None)
        out[f"grad_norm_{term}"] = math.sqrt(sq)
        for p in scorer.parameters():
            p.grad = None
    return out


def _gather_list(acc, values: list) -> list:
    if acc.num_processes == 1:
        return list(values)
    from accelerate.utils import gather_object
    return list(gather_object(list(values)))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML file with TrainConfig keys")
    ap.add_argument("--section", default=None, help="read only this top-level section of the YAML")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. mode.kind=soft steps=100")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(TrainConfig, args.config, args.overrides, section=args.section)
    except ConfigError as e:
        return cli_error(e)
    try:
        summary = train(cfg, " ".join(args.overrides))
    except Preempted:
        return PREEMPTED_EXIT_CODE
    print(json.dumps(summary, indent=2))
    return 0
