"""Out-of-domain checks (method.md §5, Table 2): multiple-choice accuracy and the NLL of the right answer.

Laptop (CPU):
    softcot ood --model base=smollm2 --data arc=../shared/data/arc_challenge/ARC-Challenge-Test.jsonl \\
        --data mmlu=../shared/data/mmlu --limit 200 --threads 1 --out results/ood/smollm2.json
Base and fine-tuned side by side (one GPU):
    softcot ood --model base=meta-llama/Llama-3.2-3B-Instruct --model hard=results/train/hard/model \\
        --model soft=results/train/soft/model --data hellaswag=data/hellaswag.jsonl --out results/ood/llama3b.json

Each choice is scored by the log-likelihood of its continuation given a context, as lm-eval-harness does:
    ARC, MMLU            context "Question: {question}\\nAnswer:"   continuation " " + choice
    HellaSwag            context "{question}" (the ctx)            continuation " " + ending
    toy OOD (toy_seq)    context toy.format_prompt(question)         continuation " " + choice
(`--context-template` replaces the template for every benchmark.) The continuation's tokens are the
difference between the tokenisations of context + continuation and of the context alone (lm-eval's
`_encode_pair`; trailing spaces of the context move to the continuation), and its log-likelihood is the
exact sum of log-softmax over those tokens.

Metrics per benchmark: acc (argmax log-likelihood), acc_norm (argmax log-likelihood / byte length of the
continuation, lm-eval's acc_norm), nll (mean over items of the per-token negative log-likelihood of the
correct continuation, in nats), n. Written to OUT (JSON) and a Markdown table beside it (OUT with .md).
"""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import torch

from softcot.config import ConfigError, cli_error
from softcot.io import DataError, read_jsonl, write_json, write_text
from softcot.modeling import ModelConfig, load_model
from softcot.rollout import decoder_of, lm_logits
from softcot.toy import SEQ_SOURCE, TOY_PROMPT_TEMPLATE, format_prompt

DEFAULT_CONTEXT = "Question: {question}\nAnswer:"
CONTEXTS = {"hellaswag": "{question}", SEQ_SOURCE: TOY_PROMPT_TEMPLATE}
BENCH_ALIASES = {"arc_challenge": "arc", "arc-challenge": "arc"}


def context_template(source: str | None, override: str | None = None) -> str:
    """The context template of a record's source (`override`, if given, wins)."""
    return override if override is not None else CONTEXTS.get(source or "", DEFAULT_CONTEXT)


# --------------------------------------------------------------------------- data

def load_choice_records(bench: str, path: str | Path, limit: int | None = None) -> list[dict]:
    """Multiple-choice records {question, choices, label, source}: a normalised JSONL (softcot prepare-data,
    softcot toy-data) as is, anything else through `load_benchmark` (raw ARC / MMLU / HellaSwag files or folders)."""
    from softcot.benchmarks import BENCHMARKS, load_benchmark
    p = Path(path)
    if not p.exists():
        raise DataError(f"{bench}: {p} does not exist")
    if p.is_file() and p.suffix == ".jsonl":
        rows = read_jsonl(p)
        if rows and isinstance(rows[0].get("choices"), list) and isinstance(rows[0].get("label"), int):
            rows = rows[:limit] if limit is not None else rows
            for i, r in enumerate(rows, 1):
                ch, lab = r.get("choices"), r.get("label")
                if (not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch)
                        or not isinstance(lab, int) or not 0 <= lab < len(ch)
                        or not isinstance(r.get("question"), str)):
                    raise DataError(f"{p}, line {i}: need a question, a list of 2+ string choices and a 0-based label")
            return [{**r, "source": r.get("source") or bench} for r in rows]
    name = BENCH_ALIASES.get(bench, bench)
    if name not in BENCHMARKS or BENCHMARKS[name].kind != "choice":
        raise DataError(f"{bench}: {p} is not a normalised multiple-choice JSONL, and {bench!r} is not a known "
                        "multiple-choice benchmark (arc | mmlu | hellaswag); normalise it with softcot prepare-data")
    return list(load_benchmark(name, str(p), limit=limit))


# --------------------------------------------------------------------------- scoring

def encode_pair(tok, context: str, continuation: str, add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) the lm-eval way: the continuation is whole minus context."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=add_special_tokens)
    ctx = tok.encode(context, add_special_tokens=add_special_tokens)
    cont = whole[len(ctx):]
    ctx = whole[:len(ctx)]
    if not cont:
        raise ValueError(f"continuation {continuation!r} encodes to no tokens after context {context[-40:]!r}")
    if not ctx:  # nothing to condition on: start from BOS (or EOS), as lm-eval does
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ctx = [start]
    return ctx, cont


@torch.no_grad()
def loglikelihoods(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 16, pad_id: int = 0,
                   progress: bool = False, desc: str = "loglik") -> list[tuple[float, int]]:
    """(sum of log p(continuation token | prefix), number of continuation tokens) per (context, continuation).

    Batches are right-padded (causal attention never looks at the padding that follows a real token) and
    sorted by length; the LM head runs on the continuation positions only, in fp32.
    """
    from tqdm.auto import tqdm
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    out: list = [None] * len(pairs)
    body, device = decoder_of(model), model.device
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, dynamic_ncols=True):
        idx = order[s:s + batch_size]
        seqs = [(pairs[i][0] + pairs[i][1])[:-1] for i in idx]     # inputs; the last token is never an input
        T = max(len(x) for x in seqs)
        ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        rows, cols, tgts = [], [], []
        for b, (i, x) in enumerate(zip(idx, seqs)):
            ids[b, :len(x)] = torch.tensor(x)
            mask[b, :len(x)] = 1
            ctx, cont = pairs[i]
            start = len(ctx) - 1                                    # position that predicts cont[0]
            rows += [b] * len(cont)
            cols += list(range(start, start + len(cont)))
            tgts += cont
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        r, c = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        logp = torch.log_softmax(lm_logits(model, hidden[r, c]), dim=-1)
        tok_lp = logp.gather(-1, torch.tensor(tgts, device=device)[:, None]).squeeze(-1).double().cpu()
        k = 0
        for i in idx:
            n = len(pairs[i][1])
            out[i] = (float(tok_lp[k:k + n].sum()), n)
            k += n
    return out


def score_choices(model, tok, records: list[dict], template: str | None = None, batch_size: int = 16,
                  add_special_tokens: bool = True, progress: bool = False, desc: str = "choices") -> dict:
    """acc, acc_norm, nll (mean per-token NLL of the right answer) and n over multiple-choice records;
    `items` holds each record's per-choice log-likelihoods."""
    pairs, owner, nbytes = [], [], []
    for j, r in enumerate(records):
        context = format_prompt(r["question"], context_template(r.get("source"), template))
        for c in r["choices"]:
            pairs.append(encode_pair(tok, context, " " + c, add_special_tokens))
            owner.append(j)
            nbytes.append(len((" " + c).encode("utf-8")))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ll = loglikelihoods(model, pairs, batch_size, pad, progress, desc)
    acc = acc_norm = nll = 0.0
    items, k = [], 0
    for r in records:
        n = len(r["choices"])
        s = [ll[k + i][0] for i in range(n)]
        norm = [ll[k + i][0] / nbytes[k + i] for i in range(n)]
        lab = r["label"]
        pred, pred_norm = max(range(n), key=s.__getitem__), max(range(n), key=norm.__getitem__)
        acc += pred == lab
        acc_norm += pred_norm == lab
        nll += -s[lab] / ll[k + lab][1]
        items.append({"id": r.get("id"), "label": lab, "pred": pred, "pred_norm": pred_norm, "loglik": s,
                      "n_tokens": [ll[k + i][1] for i in range(n)]})
        k += n
    m = max(1, len(records))
    return {"acc": acc / m, "acc_norm": acc_norm / m, "nll": nll / m, "n": len(records), "items": items}


# --------------------------------------------------------------------------- several models x benchmarks

def as_model_config(spec) -> ModelConfig:
    if isinstance(spec, ModelConfig):
        return spec
    from softcot.evaluate import model_fields
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


def _pairs(items: list[str], flag: str) -> dict[str, str]:
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
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                    help="a model to score (repeatable): directory, hub id or 'smollm2'")
    ap.add_argument("--gguf", action="append", default=[], metavar="NAME=FILE",
                    help="GGUF file inside a model's directory (FILE alone when there is one model)")
    ap.add_argument("--data", action="append", required=True, metavar="BENCH=PATH",
                    help="a benchmark (repeatable): arc | mmlu | hellaswag (raw or normalised) or any normalised JSONL")
    ap.add_argument("--limit", type=int, help="the first N items of each benchmark")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--context-template", help="context template for every benchmark (must contain {question})")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", required=True, help="output JSON file (a .md table is written beside it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        from softcot.evaluate import model_fields
        specs = _pairs(args.model, "--model")
        if len(args.gguf) == 1 and "=" not in args.gguf[0] and len(specs) == 1:
            ggufs = {next(iter(specs)): args.gguf[0]}
        else:
            ggufs = _pairs(args.gguf, "--gguf")
        unknown = sorted(set(ggufs) - set(specs))
        if unknown:
            raise ConfigError(f"--gguf {unknown[0]}=...: no --model named {unknown[0]}")
        models = {n: ModelConfig(**model_fields(d, ggufs.get(n))) for n, d in specs.items()}
        for n, cfg in models.items():
            cfg.validate(f"--model {n}: ")
        data = _pairs(args.data, "--data")
        if args.limit is not None and args.limit < 1:
            raise ConfigError(f"--limit: got {args.limit}; must be >= 1")
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size: got {args.batch_size}; must be >= 1")
        if args.context_template is not None and "{question}" not in args.context_template:
            raise ConfigError("--context-template must contain {question}")
        if args.threads:
            torch.set_num_threads(args.threads)
        res = ood(models, data, args.limit, args.batch_size, args.context_template, progress=not args.no_progress)
    except (ConfigError, DataError) as e:
        return cli_error(e)
    out = Path(args.out)
    write_json(out, res)
    table = markdown_table(res)
    write_text(out.with_suffix(".md"), table)
    print(table, end="")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
