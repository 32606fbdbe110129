"""Out-of-domain checks (the paper's Table 2): multiple-choice accuracy and the NLL of the right answer.

Laptop (CPU):
    softcot ood --model base=smollm2 --data arc=../shared/data/arc_challenge/ARC-Challenge-Test.jsonl \\
        --data mmlu=../shared/data/mmlu --limit 200 --threads 1 --out results/ood/smollm2.json
Base and fine-tuned side by side (one GPU):
    softcot ood --model base=meta-llama/Llama-3.2-3B-Instruct --model hard=results/train/hard/model \\
        --model soft=results/train/soft/model --data hellaswag=data/hellaswag.jsonl --out results/ood/llama3b.json

Each choice is scored by the log-likelihood of its continuation given a context, as lm-eval-harness does
(softcot.choices):
    ARC, MMLU            context "Question: {question}\\nAnswer:"   continuation " " + choice
    HellaSwag            context "{question}" (the ctx)            continuation " " + ending
    toy OOD (toy_seq)    context "Q: {question}\\nA:"               continuation " " + choice
(`--context-template` or `context_template=...` replaces the template for every benchmark.)
Every option is also a config key: `--config FILE` (OODConfig keys) and `key=value` overrides.

Metrics per benchmark: acc (argmax log-likelihood), acc_norm (argmax log-likelihood / byte length of the
continuation, lm-eval's acc_norm), nll (mean over items of the per-token negative log-likelihood of the
correct continuation, in nats), n. Written to OUT (JSON) and a Markdown table beside it (OUT with .md).
"""
from __future__ import annotations

import argparse
import gc
from pathlib import Path

import torch

from softcot.benchmarks import load_choice_records
from softcot.choices import score_choices
from softcot.config import ConfigError, load_config
from softcot.io import write_json, write_text
from softcot.modeling import ModelConfig, load_model, model_fields
from softcot.schema import OODConfig

# --------------------------------------------------------------------------- several models x benchmarks

def as_model_config(spec) -> ModelConfig:
    if isinstance(spec, ModelConfig):
        return spec
    return ModelConfig(**model_fields(str(spec), None))


def ood(models: dict, data_files: dict, limit: int | None = None, batch_size: int = 16,
        context: str | None = None, progress: bool = True, loaded: dict | None = None) -> dict:
    """{"models": {name: {bench: {acc, acc_norm, nll, n}}}, ...} for every model x benchmark.

    models: {name: ModelConfig | directory | hub id | "smollm2"}; data_files: {bench: path};
    loaded: optional {name: (model, tokenizer)} already in memory (tests).
    """
    data = {b: load_choice_records(b, p, limit) for b, p in data_files.items()}
    res: dict = {"models": {}, "items": {}, "data": {b: str(p) for b, p in data_files.items()},
                 "n": {b: len(r) for b, r in data.items()}, "limit": limit, "context_template": context}
    for name, spec in models.items():
        cfg = as_model_config(spec)
        if loaded and name in loaded:
            model, tok = loaded[name]
        else:
            cfg.validate("model." + name + ".")
            model, tok = load_model(cfg)
        res["models"][name] = {"model": cfg.name_or_path, "gguf_file": cfg.gguf_file, "benchmarks": {}}
        res["items"][name] = {}
        for bench, recs in data.items():
            m = score_choices(model, tok, recs, context, batch_size, cfg.add_special_tokens, progress,
                              desc=f"{name}/{bench}")
            res["items"][name][bench] = m.pop("items")
            res["models"][name]["benchmarks"][bench] = m
        del model
        gc.collect()
    return res


def markdown_table(res: dict) -> str:
    benches = list(res["n"])
    head = "| model | " + " | ".join(f"{b} acc | {b} acc_norm | {b} NLL" for b in benches) + " |"
    sep = "|---|" + "---:|" * (3 * len(benches))
    lines = [head, sep]
    for name, m in res["models"].items():
        cells = []
        for b in benches:
            x = m["benchmarks"][b]
            cells += [f"{x['acc']:.3f}", f"{x['acc_norm']:.3f}", f"{x['nll']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("n = " + ", ".join(f"{b}: {n}" for b, n in res["n"].items()) +
                 ". acc: argmax log-likelihood; acc_norm: per byte; "
                 "NLL: mean per-token NLL of the right answer (nats).")
    return "\n".join(lines) + "\n"


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"{flag} {it!r}: expected NAME=VALUE, e.g. {flag} base=path/to/model")
        k, v = it.split("=", 1)
        out[k.strip()] = v
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot ood", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML file with OODConfig keys (models, data, gguf, limit, batch_size, ...)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. limit=50 batch_size=32")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="a model to score (repeatable): directory, hub id or 'smollm2'")
    ap.add_argument("--gguf", action="append", default=[], metavar="NAME=FILE",
                    help="GGUF file inside a model's directory (FILE alone when there is one model)")
    ap.add_argument("--revision", action="append", default=[], metavar="NAME=REV",
                    help="hub revision (branch, tag or commit) of model NAME")
    ap.add_argument("--data", action="append", default=[], metavar="BENCH=PATH",
                    help="a benchmark (repeatable): arc | mmlu | hellaswag (raw or normalised) or any normalised JSONL")
    ap.add_argument("--limit", type=int, help="the first N items of each benchmark")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--context-template", help="context template for every benchmark (must contain {question})")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", required=True, help="output JSON file (a .md table is written beside it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_intermixed_args(argv)
    specs = parse_pairs(args.model, "--model")
    if len(args.gguf) == 1 and "=" not in args.gguf[0] and len(specs) == 1:
        ggufs = {next(iter(specs)): args.gguf[0]}
    else:
        ggufs = parse_pairs(args.gguf, "--gguf")
    flags = {"models": specs, "gguf": ggufs, "revision": parse_pairs(args.revision, "--revision"),
             "data": parse_pairs(args.data, "--data"), "limit": args.limit,
             "batch_size": args.batch_size, "context_template": args.context_template, "threads": args.threads}
    given = {k: v for k, v in flags.items() if v is not None and v != {}}
    cfg = load_config(OODConfig, args.config, args.overrides, flags=given)
    models = cfg.model_configs()
    for n, m in models.items():
        m.validate(f"--model {n}: ")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    res = ood(models, cfg.data, cfg.limit, cfg.batch_size, cfg.context_template, progress=not args.no_progress)
    print(write_results(res, args.out), end="")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


def write_results(res: dict, out: str | Path) -> str:
    """Write `res` to OUT (JSON) and its Markdown table beside it (OUT with .md); return the table."""
    out = Path(out)
    write_json(out, res)
    table = markdown_table(res)
    write_text(out.with_suffix(".md"), table)
    return table
