"""Pre-train the embedded default's base model: a tiny char-level Llama, from scratch, on the toy demos.

    softcot pretrain --data DATA_DIR --config FILE.yaml --out MODEL_DIR --ckpt-dir CKPT_DIR [key=value ...]

DATA_DIR is `softcot toy-data` output. Training texts are the demos of the main family (train.jsonl) and of
the OOD family (ood_train.jsonl; each batch slot is an OOD demo with probability `ood_fraction`), each
`prompt + completion + <eos>`, with the next-token loss on the completion only (mean over each sequence's
completion tokens, then over the batch). AdamW, linear warm-up then cosine decay to `min_lr_ratio * lr`,
gradient clipping. The batch of step s is a function of (seed, s)
alone, so a run killed at any moment (kill -9) and restarted with the same command resumes from the newest
step checkpoint in CKPT_DIR and ends with exactly the weights of an uninterrupted run (CPU, same threads).

MODEL_DIR is written atomically at the end: the model (safetensors), the tokenizer, generation_config.json,
pretrain_config.json, pretrain_metrics.jsonl (step, loss, lr, seconds; val_acc on eval steps) and
base_eval.json (greedy accuracy on val / test / test_hard, sampled accuracy at temperature 1, OOD
multiple-choice accuracy).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from softcot.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from softcot.chartok import build_char_tokenizer
from softcot.choices import score_choices
from softcot.config import ConfigError, load_config
from softcot.io import DataError, append_jsonl, atomic_dir, read_jsonl, write_json, write_jsonl
from softcot.optim import make_optimizer as make_adamw
from softcot.progress import Progress
from softcot.schema import OptimConfig, PretrainConfig
from softcot.toy import SEQ_SOURCE, TOY_PROMPT_TEMPLATE, TOY_WORDS, demo_text, format_prompt, is_correct


# The embedded default's base (0.37M parameters, 500 steps x 48 demos of 2-3 operations, 20% of them OOD; char
# tokenizer with the marker and "\\boxed{" as single tokens). Its accuracies are in base_eval.json beside the
# model and in the generated results document: it solves most 3-operation problems and few 4-operation ones
# (it tends to stop after 3), which is the room RL has.
DEFAULT_PRETRAIN = PretrainConfig()

# Fields that do not change the trained weights; a resumed run may change them freely.
_NON_TRAINING_FIELDS = {"ckpt_every", "keep_ckpts", "eval_every", "n_eval", "eval_batch_size", "max_new_tokens",
                        "n_sample", "threads"}


# ----------------------------------------------------------------------------------------------------------
# data

@dataclass
class Encoded:
    ids: list[list[int]]          # prompt + completion + eos
    n_prompt: list[int]           # prompt length (loss starts after it)


def encode_demos(records: list[dict], tokenizer, template: str = TOY_PROMPT_TEMPLATE) -> Encoded:
    ids, n_prompt = [], []
    for r in records:
        prompt, completion = demo_text(r, template)
        p = tokenizer.encode(prompt, add_special_tokens=False)
        c = tokenizer.encode(completion, add_special_tokens=False)
        ids.append(p + c + [tokenizer.eos_token_id])
        n_prompt.append(len(p))
    return Encoded(ids, n_prompt)


def batch_indices(seed: int, step: int, batch_size: int, n_main: int, n_ood: int, ood_fraction: float):
    """The (family, index) pairs of step `step`'s batch: a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    use_ood = rng.random(batch_size) < (ood_fraction if n_ood else 0.0)
    main_idx = rng.integers(0, max(n_main, 1), batch_size)
    ood_idx = rng.integers(0, max(n_ood, 1), batch_size)
    return [("ood", int(o)) if u else ("main", int(m)) for u, m, o in zip(use_ood, main_idx, ood_idx)]


def collate(seqs: list[list[int]], n_prompt: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels (-100 on the prompt and the padding)."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (s, n) in enumerate(zip(seqs, n_prompt)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, n: len(s)] = torch.tensor(s[n:])
    return ids, labels


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged over each sequence's completion tokens, then over the batch, so a
    3-token OOD answer weighs as much as a 60-token CoT (a token-level mean would all but ignore the OOD family)."""
    tgt = labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tgt.flatten(),
                                            ignore_index=-100, reduction="none").view_as(tgt)
    mask = (tgt != -100).float()
    return ((tok * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def data_fingerprint(*encs: Encoded) -> str:
    h = hashlib.sha256()
    for e in encs:
        for s, n in zip(e.ids, e.n_prompt):
            h.update(np.asarray(s + [-1, n, -2], dtype=np.int32).tobytes())
    return h.hexdigest()[:16]


def load_toy_data(data_dir: str | Path) -> dict[str, list[dict]]:
    data_dir = Path(data_dir)
    out = {}
    for name in ("pretrain", "val", "test", "test_hard", "ood", "ood_train"):
        path = data_dir / f"{name}.jsonl"
        if path.exists():
            out[name] = read_jsonl(path)
        elif name in ("pretrain", "val"):
            raise DataError(f"{path} not found; write the toy data first: softcot toy-data --out {data_dir}")
        else:
            out[name] = []
    return out


# ----------------------------------------------------------------------------------------------------------
# model

def build_model(cfg: PretrainConfig, tokenizer):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, rope_theta=cfg.rope_theta,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, initializer_range=0.02)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def make_optimizer(model, cfg: PretrainConfig):
    """AdamW with weight decay on matrices only, and the RL trainer's schedule (softcot.optim): linear warm-up,
    then cosine decay to `min_lr_ratio * lr`."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optim = OptimConfig(lr=cfg.lr, warmup_steps=cfg.warmup, schedule="cosine", min_lr_ratio=cfg.min_lr_ratio,
                        weight_decay=cfg.weight_decay, betas=list(cfg.betas))
    return make_adamw([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                      optim, cfg.steps)


# ----------------------------------------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def generate_completions(model, tokenizer, questions: list[str], *, do_sample: bool = False,
                         temperature: float = 1.0, max_new_tokens: int = 128, batch_size: int = 128,
                         template: str = TOY_PROMPT_TEMPLATE) -> list[str]:
    """Completions of `format_prompt(q)` (left-padded batches; greedy unless do_sample)."""
    was_training = model.training
    model.eval()
    out: list[str] = []
    for i in range(0, len(questions), batch_size):
        prompts = [format_prompt(q, template) for q in questions[i: i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if do_sample else dict(do_sample=False)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **kw)
        out.extend(tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    model.train(was_training)
    return out


def accuracy(model, tokenizer, records: list[dict], **kw) -> float:
    if not records:
        return float("nan")
    comps = generate_completions(model, tokenizer, [r["question"] for r in records], **kw)
    return sum(is_correct(c, r["answer"]) for c, r in zip(comps, records)) / len(records)


def base_eval(model, tokenizer, data: dict[str, list[dict]], cfg: PretrainConfig) -> dict:
    res: dict = {}
    for split in ("val", "test", "test_hard"):
        rows = data.get(split) or []
        if not rows:
            continue
        kw = dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size)
        entry = {"n": len(rows), "greedy_acc": accuracy(model, tokenizer, rows, **kw)}
        if cfg.n_sample > 0:
            torch.manual_seed(cfg.seed + 1)
            accs = [accuracy(model, tokenizer, rows, do_sample=True, temperature=1.0, **kw) for _ in range(cfg.n_sample)]
            entry["sample_acc"] = sum(accs) / len(accs)
        res[split] = entry
    if data.get("ood"):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            m = score_choices(model, tokenizer, data["ood"], batch_size=256, add_special_tokens=False)
        model.train(was_training)
        res["ood"] = {k: m[k] for k in ("acc", "acc_norm", "nll", "n")}
    return res


# ----------------------------------------------------------------------------------------------------------
# training

@dataclass
class _Pretraining:
    """What the phases of one pre-training run share."""
    cfg: PretrainConfig
    data: dict
    tokenizer: object
    encoded: dict                    # {"main": Encoded, "ood": Encoded}
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    fingerprint: dict


def _setup(cfg: PretrainConfig, data_dir: str | Path) -> _Pretraining:
    """Data, char tokenizer, encoded demos, a fresh model and its optimiser, and the run's fingerprint."""
    data = load_toy_data(data_dir)
    texts = [t for name in ("pretrain", "ood_train") for r in data[name] for t in demo_text(r)]
    tokenizer = build_char_tokenizer(texts, words=TOY_WORDS if cfg.word_tokens else ())
    encoded = {"main": encode_demos(data["pretrain"], tokenizer),
               "ood": encode_demos([r for r in data["ood_train"] if r.get("source") == SEQ_SOURCE], tokenizer)}
    model = build_model(cfg, tokenizer)
    opt, sched = make_optimizer(model, cfg)
    fingerprint = {"data": data_fingerprint(encoded["main"], encoded["ood"]), "vocab": len(tokenizer),
                   "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NON_TRAINING_FIELDS}}
    fingerprint = json.loads(json.dumps(fingerprint))   # tuples -> lists, as they come back from JSON
    return _Pretraining(cfg, data, tokenizer, encoded, model, opt, sched, fingerprint)


def _resume(run: _Pretraining, ckpt_dir: Path) -> tuple[int, float]:
    """(step, seconds so far) of the newest checkpoint of this very run (0, 0.0 without one); the metrics
    logged after it are dropped (a kill between checkpoints)."""
    start, seconds = 0, 0.0
    ck = latest_checkpoint(ckpt_dir)
    if ck is not None:
        # Build the model state first, then check the checkpoint belongs to this run.
        saved = json.loads((ck / "state.json").read_text())["extra"].get("fingerprint")
        if saved != run.fingerprint:
            raise ConfigError(f"{ck} was written by a different config or data set ({saved} != {run.fingerprint}); "
                              f"use a fresh --ckpt-dir or delete {ckpt_dir}")
        st = load_checkpoint(ck, run.model, run.opt, run.sched)
        start, seconds = st["step"], float(st["extra"].get("seconds", 0.0))
    metrics_path = ckpt_dir / "metrics.jsonl"
    rows = [r for r in (read_jsonl(metrics_path) if metrics_path.exists() else []) if r.get("step", 0) <= start]
    write_jsonl(metrics_path, rows)
    return start, seconds


def _step(run: _Pretraining, step: int) -> tuple[float, float]:
    """One optimiser step on the batch of `step` (a pure function of (seed, step)); returns (loss, lr)."""
    cfg, enc = run.cfg, run.encoded
    pairs = batch_indices(cfg.seed, step, cfg.batch_size, len(enc["main"].ids), len(enc["ood"].ids), cfg.ood_fraction)
    ids, labels = collate([enc[f].ids[i] for f, i in pairs], [enc[f].n_prompt[i] for f, i in pairs],
                          run.tokenizer.pad_token_id)
    # Right padding + causal attention: real tokens never see padding, so no mask is needed.
    loss = sequence_loss(run.model(input_ids=ids).logits, labels)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    lr = run.opt.param_groups[0]["lr"]
    run.opt.step()
    run.sched.step()
    return loss.item(), lr


def pretrain(cfg: PretrainConfig, data_dir: str | Path, out_dir: str | Path | None, ckpt_dir: str | Path,
             stop_at: int | None = None, progress: bool = True) -> dict | None:
    """Train (resuming from `ckpt_dir` if it holds a checkpoint) and write `out_dir`. Returns base_eval,
    or None when `stop_at` ended the run early (after checkpointing that step; nothing is written to out)."""
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(ckpt_dir)
    if out_dir is not None and Path(out_dir).resolve() == ckpt_dir.resolve():
        raise ConfigError("--ckpt-dir must differ from --out (the output directory is replaced whole at the end)")
    run = _setup(cfg, data_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start, seconds = _resume(run, ckpt_dir)
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    run.model.train()
    bar = Progress(cfg.steps, "pretrain", unit="step", initial=start, enabled=progress)
    t0 = time.perf_counter() - seconds
    for step in range(start, end):
        loss, lr = _step(run, step)
        done = step + 1
        row = {"step": done, "loss": loss, "lr": lr, "seconds": round(time.perf_counter() - t0, 3)}
        if done % cfg.eval_every == 0 or done == cfg.steps:
            val = run.data["val"][: cfg.n_eval]
            row["val_acc"] = accuracy(run.model, run.tokenizer, val, max_new_tokens=cfg.max_new_tokens,
                                      batch_size=cfg.eval_batch_size)
            bar.write(f"step {done}/{cfg.steps} loss {loss:.4f} lr {lr:.2e} "
                      f"val greedy acc {row['val_acc']:.3f} (n={len(val)}) {row['seconds']:.0f}s")
        append_jsonl(ckpt_dir / "metrics.jsonl", row)
        bar.update(1, loss=f"{loss:.3f}")
        if done % cfg.ckpt_every == 0 or done == end:
            save_checkpoint(ckpt_dir, done, run.model, run.opt, run.sched, keep=cfg.keep_ckpts,
                            extra={"seconds": time.perf_counter() - t0, "fingerprint": run.fingerprint})
    bar.close()
    if end < cfg.steps:
        return None
    return _finish(run, out_dir, ckpt_dir, time.perf_counter() - t0)


def _finish(run: _Pretraining, out_dir: str | Path | None, ckpt_dir: Path, train_seconds: float) -> dict:
    """base_eval of the trained model; the model, tokenizer, metrics, config and base_eval.json into `out_dir`."""
    t1 = time.perf_counter()
    result = base_eval(run.model, run.tokenizer, run.data, run.cfg)
    result["train_seconds"] = round(train_seconds, 1)
    result["eval_seconds"] = round(time.perf_counter() - t1, 1)
    result["n_params"] = sum(p.numel() for p in run.model.parameters())
    result["steps"] = run.cfg.steps
    if out_dir is not None:
        with atomic_dir(out_dir) as tmp:
            run.model.save_pretrained(tmp)
            run.tokenizer.save_pretrained(tmp)
            write_jsonl(tmp / "pretrain_metrics.jsonl", read_jsonl(ckpt_dir / "metrics.jsonl"))
            write_json(tmp / "pretrain_config.json", dataclasses.asdict(run.cfg))
            write_json(tmp / "base_eval.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softcot pretrain", description=(
        "Pre-train the embedded default's tiny char-level Llama on toy demos; resumable from --ckpt-dir. "
        f"Config keys (YAML mapping or key=value): {', '.join(f.name for f in dataclasses.fields(PretrainConfig))}."))
    p.add_argument("--data", required=True, help="softcot toy-data output directory")
    p.add_argument("--config", help="YAML file of PretrainConfig fields (defaults: DEFAULT_PRETRAIN)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=200 threads=1")
    p.add_argument("--out", required=True, help="output model directory (written atomically at the end)")
    p.add_argument("--ckpt-dir", required=True, help="step checkpoints (not the output); rerun to resume")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after this step's checkpoint without writing --out (to split a run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_intermixed_args(argv)
    cfg = load_config(PretrainConfig, args.config, args.overrides)
    result = pretrain(cfg, args.data, args.out, args.ckpt_dir, stop_at=args.stop_at, progress=not args.no_progress)
    if result is None:
        print(f"stopped at step {args.stop_at}; checkpoint in {args.ckpt_dir}; rerun without --stop-at to finish")
    else:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
