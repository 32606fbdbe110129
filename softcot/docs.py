"""docs/results.md, generated from one experiment's results folder: every number in it comes from the files.

    softcot docs --results results/toy --test-sets test test_hard --out docs/results.md
    snakemake --cores all docs                     # the same through the workflow (rule docs)

It holds the paper's four findings marked held / not held (softcot.findings: rules and error bars), the base
model's accuracies (base/base_eval.json, the embedded default only), the tables present under tables/ (their
Markdown as written by softcot.tables), the paper's rows beside ours when a paper preset ran, the figures
(copied next to the document, into figures/) with captions whose numbers are read from the results, and a
section for each further table or figure under study/ and estimators/. Torch-free.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
from pathlib import Path

from softcot import __version__
from softcot.findings import BASE, PAPER_MODES, Stat, judge
from softcot.io import DataError, atomic_path, write_text
from softcot.provenance import provenance
from softcot.runs import parse_variant
from softcot.tables import read_csv

KNOWN_TABLES = ("table1", "table2", "table3_5", "table6", "table8")
KNOWN_FIGURES = ("fig2", "fig3", "fig4", "fig5")
EXTRA_DIRS = ("study", "estimators")            # optional outputs of other targets, included when present
TABLE_NAMES = {"table1": "Table 1: hard inference", "table2": "Table 2: out of domain",
               "table3_5": "Tables 3-5: nine inference columns per test set",
               "table6": "Table 6: noise-scale ablation", "table8": "Table 8: CoT-temperature ablation"}
FIGURE_TEXT = {
    "fig2": "Figure 2: training reward (band: standard error over seeds) and greedy validation pass@1 (error bars: "
            "seed std) per training mode; grey lines: the base's validation score (step 0) in each mode's greedy "
            "decoding.",
    "fig3": "Figure 3: pass@k gain over the base (points; error bars: seed std) per test set and inference kind.",
    "fig4": "Figure 4: CoT entropy by position under sampled inference; shaded: positions few rollouts reach.",
    "fig5": "Figure 5: ablations of the noise scale gamma and the CoT temperature tau: training reward and greedy "
            "validation.",
}


# ---------------------------------------------------------------------------------------------- inputs


def figure_copies(results: str | Path) -> dict[str, str]:
    """{source PNG: file name under the document's figures/}: every figure the document shows. The workflow's
    rule declares the same names as outputs."""
    res = Path(results)
    out = {str(p): p.name for p in sorted((res / "figures").glob("*.png"))}
    for d in EXTRA_DIRS:
        out.update({str(p): "_".join((d, *p.relative_to(res / d).parts)) for p in sorted((res / d).rglob("*.png"))})
    return out


def extra_inputs(results: str | Path) -> list[str]:
    """The optional result files the document reads when present (ablation tables, study, estimators)."""
    res = Path(results)
    files = [p for name in KNOWN_TABLES[3:] for p in (res / "tables").glob(f"{name}.*")]
    files += [p for p in (res / "tables").glob("*.md") if p.stem not in KNOWN_TABLES]
    files += [p for d in EXTRA_DIRS for p in (res / d).rglob("*") if p.suffix in (".md", ".csv", ".png")]
    files += [p for p in (res / "figures").glob("*.png") if p.stem not in KNOWN_FIGURES[:3]]
    return sorted(str(p) for p in files)


def _csv(res: Path, name: str) -> list[dict]:
    p = res / "tables" / f"{name}.csv"
    if not p.exists():
        return []
    try:
        return read_csv(p)
    except (KeyError, ValueError):
        raise DataError(f"{p}: not a table in softcot's numeric layout (columns mean, std, n, seed<k>); rebuild "
                        f"it with `snakemake --cores all {name}`") from None


def _stat(rows: list[dict], **key) -> Stat | None:
    for r in rows:
        if all(r.get(k) == v for k, v in key.items()):
            return Stat(r["mean"], r["std"], r["n"])
    return None


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")       # noqa: E731  (a bar inside a cell, e.g. |Δ NLL|)
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows]) + "\n"


def _without_paper_blocks(md: str) -> str:
    """A table file without its "Paper, Table N" blocks (the document shows them row under row with ours)."""
    return re.sub(r"^### Paper, .*?(?=^### |\Z)", "", md, flags=re.M | re.S)


def _demote(md: str, levels: int = 1) -> str:
    """Push a file's headings down so that they sit under the document's own sections."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m[1]) + levels) + " ", md, flags=re.M)


# ---------------------------------------------------------------------------------------------- sections


def findings_section(res: Path, test_sets: list[str]) -> str:
    found = judge(_csv(res, "table3_5"), _csv(res, "table2"), test_sets)
    out = ["## The paper's findings, tested on this run", "",
           "Each finding is judged on the tables' numbers (mean ± sample std over seeds) by the rule beside it; "
           "pooled std = sqrt(((n_a - 1) s_a² + (n_b - 1) s_b²) / (n_a + n_b - 2)), to which a base value (one "
           "run) adds no spread. The rules are fixed in `softcot/findings.py`.", ""]
    out.append(_md_table(["finding", "verdict", "rule"], [[f"**{f.key}** {f.claim}", f"**{f.verdict}**", f.rule]
                                                         for f in found]))
    for f in found:
        out += [f"### {f.key}: {f.verdict}", "", f.claim, ""]
        if not f.comparisons:
            out += ["The tables this finding needs are missing (Tables 3-5 for F1, F2 and F4; Table 2 for F3).", ""]
            continue
        rows = [[c.where, c.what, c.a, c.b, f"{c.diff:+{c.spec}}",
                 "-" if not c.determined else f"{c.tol:{c.spec}}", c.outcome, "yes" if c.determined and c.ok else "no"]
                for c in f.comparisons]
        out.append(_md_table(["set", "comparison", "a", "b", "a - b", "2 x pooled std", "outcome", "as claimed"],
                             rows))
    return "\n".join(out)


def base_section(res: Path) -> str:
    p = res / "base" / "base_eval.json"
    if not p.exists():
        return ("## The base model\n\nThe base model is a hub checkpoint; its accuracies are the 'no finetune' rows "
                "of the tables below.\n")
    b = json.loads(p.read_text())
    rows = []
    for split, v in b.items():
        if isinstance(v, dict) and "greedy_acc" in v:
            rows.append([split, f"{100 * v['greedy_acc']:.1f}", f"{100 * v['sample_acc']:.1f}", str(v["n"])])
    size = f"{b['n_params']:,} parameters, " if isinstance(b.get("n_params"), int) else ""
    steps = f"{b['steps']} pre-training steps" if b.get("steps") is not None else "pre-trained"
    text = [f"## The base model\n\n`base/base_eval.json`: the pre-trained base ({size}{steps}) on every problem "
            "of each split (the tables use the first `eval.limit` problems of each test set).\n",
            _md_table(["split", "greedy pass@1 (%)", "sampled pass@1 (%)", "problems"], rows)]
    if isinstance(b.get("ood"), dict):
        o = b["ood"]
        text.append(f"Out of domain (multiple choice, {o['n']} items): accuracy {100 * o['acc']:.1f}%, "
                    f"acc_norm {100 * o['acc_norm']:.1f}%, NLL of the correct answer {o['nll']:.3f} nats/token.\n")
    return "\n".join(text)


def _gain_sentence(rows: list[dict], dataset: str, metric: str, what: str, spec: str = ".1f") -> str:
    base = _stat(rows, dataset=dataset, method=BASE, metric=metric)
    if base is None:
        return ""
    parts = []
    for m in PAPER_MODES:
        s = _stat(rows, dataset=dataset, method=m, metric=metric)
        if s is not None:
            parts.append(f"{m} training to {s.text(spec)}")
    if not parts:
        return ""
    return f"On {dataset}, {what} moves from the base's {base.mean:{spec}} to: " + "; ".join(parts) + "."


def table_caption(res: Path, name: str, test_sets: list[str]) -> str:
    if name == "table1":
        return _gain_sentence(_csv(res, "table1"), test_sets[0], "G1", "greedy pass@1 under hard inference (%)")
    if name == "table2":
        rows = _csv(res, "table2")
        sets = list(dict.fromkeys(r["dataset"] for r in rows))
        return " ".join(_gain_sentence(rows, d, "NLL", "the NLL of the correct answer (nats/token)", ".3f")
                        for d in sets)
    return ""


def train_caption(res: Path) -> str:
    from softcot.results import load_training
    train = load_training(sorted((res / "train").glob("*/seed*")))
    parts = []
    for v in [m for m in PAPER_MODES if m in train] + sorted(v for v in train if v not in PAPER_MODES
                                                             and not parse_variant(v).tag):
        vals = [r["val"] for r in train[v] if r["val"]]
        if not vals:
            continue
        first = [100 * r[0]["greedy_pass1"] for r in vals]
        last = [100 * r[-1]["greedy_pass1"] for r in vals]
        step = vals[0][-1]["step"]
        parts.append(f"{v} {_text(first)} at step {vals[0][0]['step']} -> {_text(last)} at step {step}")
    return ("Greedy validation pass@1 (%, mean ± std over seeds): " + "; ".join(parts) + ".") if parts else ""


def _text(xs: list[float], spec: str = ".1f") -> str:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{m:{spec}}"
    return f"{m:{spec}} ± {math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)):{spec}}"


def passk_caption(res: Path, test_sets: list[str]) -> str:
    rows = _csv(res, "table3_5")
    parts = []
    for d in test_sets:
        ks = [int(r["metric"][2:]) for r in rows if r["dataset"] == d and r["metric"][:2] == "HS" and r["metric"][2:]]
        if not ks:
            continue
        metric = f"HS{max(ks)}"
        base = _stat(rows, dataset=d, method=BASE, metric=metric)
        gains = []
        for m in PAPER_MODES:
            s = _stat(rows, dataset=d, method=m, metric=metric)
            if s is not None and base is not None:
                sd = "" if s.n < 2 else f" ± {s.std:.1f}"
                gains.append(f"{m} {s.mean - base.mean:+.1f}{sd}")
        if base is not None and gains:
            parts.append(f"on {d}, hard-inference pass@{max(ks)} gains over the base's {base.mean:.1f}: "
                         + ", ".join(gains) + " points")
    return ("Read from Tables 3-5: " + "; ".join(parts) + ".") if parts else ""


def entropy_caption(res: Path, test_sets: list[str]) -> str:
    from softcot.figures import FEW_ROLLOUTS, entropy_profile
    from softcot.results import load_eval
    d = test_sets[0]
    ev = load_eval(sorted((res / "eval").glob(f"*/{d}/summary.json")))
    parts = []
    for kind in ("hard", "fuzzy", "soft"):
        runs = [r for r in ev.get((BASE, d, f"{kind}_sample"), []) if r.get("entropy_by_position")]
        if not runs:
            continue
        ent, cnt = entropy_profile(runs)
        cut = next((t for t, c in enumerate(cnt) if c < FEW_ROLLOUTS * max(cnt)), len(cnt))
        kept = [(e, t) for t, e in enumerate(ent[:cut]) if e is not None]
        if kept:
            peak, at = max(kept)
            parts.append(f"{kind} sampling: fewer than {FEW_ROLLOUTS:.0%} of the rollouts reach position {cut}; "
                         f"before it the entropy peaks at {peak:.2f} nats (position {at})")
    return ("The base model on " + d + ": " + "; ".join(parts) + ".") if parts else ""


def paper_section(res: Path, preset: str | None, test_sets: list[str]) -> str:
    """Our numbers and the paper's, row under row, for Tables 1, 3-5 and 2 of a paper preset."""
    if not preset:
        return ""
    from softcot.paper import load_paper_tables, paper_presets, paper_rows
    if preset not in paper_presets():
        return ""
    paper = load_paper_tables()
    out = [f"## The paper beside ours (preset `{preset}`)", "",
           "Each method has two rows: ours (mean ± std over seeds) and the paper's as printed "
           "(arXiv 2509.19170, `softcot/paper_tables.yaml`). Columns are matched by position: the paper's test sets "
           "in the order of this run's `data.test_sets`.", ""]
    ours1 = _csv(res, "table1")
    nine = _csv(res, "table3_5")
    jobs = [("table1", ours1, [(d, m) for d in test_sets[:3] for m in _metrics(ours1, d)[:3]])]
    jobs += [(f"table{3 + i}", nine, [(d, m) for m in _metrics(nine, d)]) for i, d in enumerate(test_sets[:3])]
    ood = _csv(res, "table2")
    for name, ours, cols in jobs:
        pcols = paper[name]["columns"]
        if not cols or len(cols) != len(pcols):
            continue
        out.append(_side_by_side(name, paper_rows(name, preset), ours, cols, pcols))
    if ood:
        pcols = paper["table2"]["columns"]
        cols = []
        for pc in pcols:
            bench, metric = pc.rsplit(" ", 1)
            d = next((x for x in dict.fromkeys(r["dataset"] for r in ood) if x.lower() == bench.lower()), None)
            cols.append((d, metric))
        out.append(_side_by_side("table2", paper_rows("table2", preset), ood, cols, pcols, ".3f"))
    return "\n".join(out)


def _metrics(rows: list[dict], dataset: str) -> list[str]:
    return list(dict.fromkeys(r["metric"] for r in rows if r["dataset"] == dataset and r["unit"] == "%"))


def _side_by_side(name, prows, ours, cols, pcols, nll_spec=".1f") -> str:
    header = ["method", "source"] + [f"{d} {m}" if d else f"(none) {m}" for d, m in cols]
    rows = []
    for pr in prows:
        method = BASE if pr["method"] == BASE else pr["method"].split()[-1]
        mine = []
        for d, m in cols:
            s = _stat(ours, dataset=d, method=method, metric=m) if d else None
            mine.append("-" if s is None else s.text(nll_spec if m == "NLL" else ".1f"))
        rows += [[method, "ours"] + mine, [method, f"paper ({pr['model']})"] + [pr["values"][c] for c in pcols]]
    title = {"table1": "Table 1", "table2": "Table 2"}.get(name, name.replace("table", "Table "))
    return f"### {title}: ours and the paper's\n\n" + _md_table(header, rows)


def _figure(rel: str, title: str, caption: str) -> str:
    caption = caption[:1].upper() + caption[1:]
    return f"![{title}]({rel})\n\n*{title}.* {caption}\n"


def extras_section(res: Path, copies: dict[str, str], rel) -> str:
    out = []
    for d in EXTRA_DIRS:
        folder = res / d
        files = sorted(folder.rglob("*"), key=lambda p: (len(p.parts), p)) if folder.is_dir() else []
        if not files:
            continue
        out += [f"## {d.capitalize()} (`{d}/`)", ""]
        for p in files:
            name = p.relative_to(res).as_posix()
            if p.suffix == ".md":
                out += [f"### {name}", "", _demote(p.read_text(encoding="utf-8"), 2)]
            elif p.suffix == ".csv" and not p.with_suffix(".md").exists():
                out += [f"### {name}", "", generic_csv_table(p)]
            elif p.suffix == ".png":
                out.append(_figure(rel(copies[str(p)]), name, ""))
    return "\n".join(out)


def generic_csv_table(path: Path) -> str:
    """A table CSV in softcot.tables' layout as Markdown: one row per (section, dataset, method), one column per
    metric, mean ± std; any other CSV is linked, not shown."""
    try:
        rows = read_csv(path)
    except (KeyError, ValueError):
        return f"(`{path.name}`: not in the numeric table layout; see the file)\n"
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    keys = list(dict.fromkeys((r["section"], r["dataset"], r.get("method", "")) for r in rows))
    cells = {(r["section"], r["dataset"], r.get("method", ""), r["metric"]): Stat(r["mean"], r["std"], r["n"])
             for r in rows}
    body = [[s, d, m] + [cells[(s, d, m, x)].text(".3g") if (s, d, m, x) in cells else "-" for x in metrics]
            for s, d, m in keys]
    return _md_table(["section", "dataset", "method"] + metrics, body)


def _recorded_commits(res: Path) -> list[str]:
    found = set()
    for p in list((res / "train").glob("*/seed*/summary.json")) + list((res / "eval").glob("*/*/summary.json")):
        try:
            c = json.loads(p.read_text()).get("code_commit")
        except (OSError, json.JSONDecodeError):
            continue
        found.add(c or "not recorded")
    return sorted(found)


# ---------------------------------------------------------------------------------------------- document


def others_section(others: dict[str, str], test_set: str) -> str:
    """Table 1 of other experiments of the same setup (fresh seeds, fresh data), each with its hard-mode gain."""
    if not others:
        return ""
    out = ["## The same budget on other seeds and data", "",
           "Each experiment below is the default's setup with one thing changed (its label). Its Table 1 is "
           "read from its own results folder; the gain is hard training's greedy pass@1 under hard inference on "
           f"`{test_set}` minus its own base's, mean ± sample std over its seeds.", ""]
    for path, label in others.items():
        res = Path(path)
        rows = _csv(res, "table1")
        if not rows:
            out += [f"### `{res.name}`: {label}", "", f"No results yet: `{res}/tables/table1.csv` is missing.", ""]
            continue
        out += [f"### `{res.name}`: {label}", "", _gain_sentence(rows, test_set, "G1",
                "greedy pass@1 under hard inference (%)"), "", _demote((res / "tables" / "table1.md").read_text(
                    encoding="utf-8"), 2)]
    return "\n".join(out)


def build(results: str | Path, out: str | Path, test_sets: list[str] | None = None,
          preset: str | None = None, others: dict[str, str] | None = None) -> str:
    """Write the document `out` (and its figures under out's folder/figures/); return its text."""
    res, out = Path(results), Path(out)
    if not (res / "tables").is_dir():
        raise FileNotFoundError(f"{res}/tables: no tables here; run `snakemake --cores all` first (or point "
                                f"--results at an experiment's results folder)")
    t1 = _csv(res, "table1")
    test_sets = test_sets or list(dict.fromkeys(r["dataset"] for r in t1 if r["metric"] == "G1"))
    copies = figure_copies(res)
    figdir = out.parent / "figures"

    def rel(name: str) -> str:              # figures/ sits beside the document
        return f"figures/{name}"

    seeds = sorted({s for r in t1 for s in r["values"]})
    commits = _recorded_commits(res)
    prov = provenance()
    parts = [f"# Results: experiment `{res.name}`", "",
             f"Generated by `softcot docs` (rule `docs`: `snakemake --cores all docs`) from `{res}` with softcot "
             f"{__version__}, code commit `{prov['code_commit']}`"
             f"{' (with uncommitted changes to softcot/)' if prov['code_dirty'] else ''}. Do not edit by hand: rerun "
             f"the rule. Results made "
             f"with code commit(s): {', '.join(f'`{c}`' for c in commits) or 'not recorded'}. Seeds: "
             f"{', '.join(map(str, seeds)) or '-'}; test sets: {', '.join(test_sets)}"
             + (f"; paper preset: `{preset}`." if preset else "."), ""]
    parts.append(findings_section(res, test_sets))
    parts.append(base_section(res))
    parts.append("## Tables\n")
    paper = paper_section(res, preset, test_sets)
    names = [n for n in KNOWN_TABLES if (res / "tables" / f"{n}.md").exists()]
    names += sorted(p.stem for p in (res / "tables").glob("*.md") if p.stem not in KNOWN_TABLES)
    for name in names:
        cap = table_caption(res, name, test_sets)
        md = (res / "tables" / f"{name}.md").read_text(encoding="utf-8")
        md = _without_paper_blocks(md) if paper and name in ("table1", "table2", "table3_5") else md
        parts += [f"### {TABLE_NAMES.get(name, name)} (`tables/{name}.md`, numbers in `tables/{name}.csv`)", ""]
        parts += ([cap, ""] if cap else []) + [_demote(md, 1)]
    if paper:
        parts.append(paper)
    parts.append("## Figures\n")
    captions = {"fig2": train_caption(res), "fig3": passk_caption(res, test_sets),
                "fig4": entropy_caption(res, test_sets)}
    for src, name in copies.items():
        p = Path(src)
        if p.parent.name != "figures":
            continue
        parts.append(_figure(rel(name), FIGURE_TEXT.get(p.stem, f"Figure {p.stem}:").split(":")[0],
                             (FIGURE_TEXT.get(p.stem, "").split(": ", 1)[-1] + " " + captions.get(p.stem, "")).strip()))
    extras = extras_section(res, copies, rel)
    if extras:
        parts.append(extras)
    if others:
        parts.append(others_section(others, test_sets[0]))
    text = "\n".join(parts).rstrip() + "\n"
    for src, name in copies.items():
        with atomic_path(figdir / name) as tmp:
            shutil.copyfile(src, tmp)
    write_text(out, text)
    return text


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot docs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="an experiment's results folder, e.g. results/toy")
    ap.add_argument("--out", default="docs/results.md", help="the document; figures go to its folder's figures/")
    ap.add_argument("--test-sets", nargs="+", help="default: the test sets of tables/table1.csv, in order")
    ap.add_argument("--preset", help="a paper preset: print the paper's rows beside ours")
    ap.add_argument("--also", action="append", default=[], metavar="DIR=LABEL",
                    help="another experiment's results folder and what it changed, shown with its Table 1")
    ap.add_argument("--readme", help="also rewrite this file's results digest block (softcot.digest), e.g. README.md")
    args = ap.parse_args(argv)
    others = dict(a.split("=", 1) if "=" in a else (a, a) for a in args.also)
    try:
        build(args.results, args.out, args.test_sets, args.preset, others)
        if args.readme:
            from softcot.digest import digest, update_readme
            update_readme(args.readme, digest(args.results, args.test_sets, others, args.out))
    except FileNotFoundError as e:
        raise DataError(str(e)) from None
    print(args.out)
    return 0
