"""The paper's tables, rebuilt from the workflow's result files (CSV + Markdown, written atomically).

    softcot tables table1   --inputs results/toy/eval/*/*/summary.json --test-sets test test_hard --out results/toy/tables/table1
    softcot tables table3_5 --inputs ... ;  table2 --inputs results/toy/ood/*.json ;  table6 / table8 --inputs ...

Values are percentages, mean ± sample std over seeds. Table 1: hard inference (greedy pass@1, sample pass@1,
sample pass@n). Tables 3-5: the nine columns (hard, fuzzy, soft inference x greedy, sample, pass@n) per
test set. Table 2: out of domain (accuracy, acc_norm, per-token NLL of the right answer). Tables 6 and 8:
the noise-scale and CoT-temperature ablations on the first test set. With `--preset NAME` the paper's own
rows for that setup (softcot/paper_tables.yaml) are printed beside ours.
"""
from __future__ import annotations

import argparse
import csv
import io
import math

from softcot.io import write_text
from softcot.results import (SETTING_COLS, fmt, load_eval, load_ood, mean_std, method_of, methods_present,
                             top_k)


def _cell(ev: dict, method: str, dataset: str, setting: str, what: str) -> tuple[str, float, float, int]:
    runs = ev.get((method, dataset, setting), [])
    if what == "pass1":
        vals = [r["pass1"] for r in runs]
    else:
        vals = [top_k(r)[1] for r in runs]
    m, sd = mean_std(vals)
    return fmt(m, sd, len(vals)), m, sd, len(vals)


def _n_of(ev: dict, dataset: str, kind: str) -> int:
    for (m, d, s), runs in ev.items():
        if d == dataset and s == f"{kind}_sample" and runs:
            return top_k(runs[0])[0]
    return 0


def verdict(ev: dict, method: str, dataset: str) -> tuple[str, str]:
    """Greedy pass@1 gain over the base under hard inference, and whether it exceeds 2 seed std."""
    if method == "no finetune":
        return "", ""
    _, base, _, _ = _cell(ev, "no finetune", dataset, "hard_greedy", "pass1")
    _, m, sd, n = _cell(ev, method, dataset, "hard_greedy", "pass1")
    if math.isnan(m) or math.isnan(base):
        return "-", "-"
    delta = (m - base) * 100
    if n < 2:
        return f"{delta:+.1f}", "one seed: no spread"
    return f"{delta:+.1f}", ("improved (> 2 sd)" if m - base > 2 * sd and m > base
                            else "no improvement at this scale")


def table1(ev: dict, test_sets: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["method"]
    for d in test_sets:
        n = _n_of(ev, d, "hard")
        header += [f"{d} G1", f"{d} S1", f"{d} S{n}"]
    header += [f"Δ G1 vs base ({test_sets[0]})", "verdict"]
    rows = []
    for method in methods_present(ev):
        row = [method]
        for d in test_sets:
            row += [_cell(ev, method, d, "hard_greedy", "pass1")[0], _cell(ev, method, d, "hard_sample", "pass1")[0],
                    _cell(ev, method, d, "hard_sample", "passk")[0]]
        rows.append(row + list(verdict(ev, method, test_sets[0])))
    return header, rows


def nine(ev: dict, dataset: str, methods: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["method"]
    for kind, c in SETTING_COLS:
        n = _n_of(ev, dataset, kind)
        header += [f"{c}G", f"{c}S", f"{c}S{n}"]
    rows = []
    for method in methods:
        row = [method]
        for kind, _ in SETTING_COLS:
            row += [_cell(ev, method, dataset, f"{kind}_greedy", "pass1")[0],
                    _cell(ev, method, dataset, f"{kind}_sample", "pass1")[0],
                    _cell(ev, method, dataset, f"{kind}_sample", "passk")[0]]
        rows.append(row)
    return header, rows


def table2(ood: dict) -> tuple[list[str], list[list[str]]]:
    benches = sorted({b for _, b in ood})
    header = ["method"] + [f"{b} {c}" for b in benches for c in ("Acc", "AccNorm", "NLL")]
    rows = []
    for method in methods_present([(m,) for m, _ in ood]):
        row = [method]
        for b in benches:
            runs = ood.get((method, b), [])
            for key, scale, digits in (("acc", 100, 2), ("acc_norm", 100, 2), ("nll", 1, 3)):
                m, sd = mean_std([r[key] for r in runs])
                row.append(fmt(m, sd, len(runs), scale, digits))
        rows.append(row)
    return header, rows


def snr_table(path: str) -> tuple[list[str], list[list[str]]]:
    import json
    d = json.load(open(path))
    header = ["mode", "snr (loss)", "snr null", "unbiased snr", "unbiased null", "snr CoT term",
              "snr answer term", "|g| CoT term", "|g| answer term", "cos (pairs)", "reward"]
    rows = []
    for mode, r in d["modes"].items():
        rows.append([mode, f"{r['total']['snr']:.4f}", f"{r['null']['snr']:.4f}",
                     f"{r['total']['snr_unbiased']:.4f}", f"{r['null']['snr_unbiased']:.4f}", f"{r['cot']['snr']:.4f}",
                     f"{r['answer']['snr']:.4f}", f"{r['cot']['grad_norm']:.3g}", f"{r['answer']['grad_norm']:.3g}",
                     f"{r['total']['cos']:.3f}", f"{r['reward_mean']:.1f}"])
    return header, rows


def diversity_table(path: str) -> tuple[list[str], list[list[str]]]:
    """Where sampled diversity comes from (softcot diagnose --diversity): one row per mode and condition."""
    import json
    d = json.load(open(path))
    header = ["mode", "condition", "pass@1", "pass@n", "distinct answers", "distinct CoTs"]
    rows = []
    for mode, r in d["modes"].items():
        for cond, v in r.get("diversity", {}).items():
            pn = next(val for key, val in v.items() if key.startswith("pass@"))
            rows.append([mode, cond, f"{100 * v['pass1']:.1f}", f"{100 * pn:.1f}", f"{v['distinct_answers']:.2f}",
                         f"{v['distinct_cots']:.2f}"])
    return header, rows


def to_markdown(title: str, header: list[str], rows: list[list[str]], notes: list[str] = ()) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"{n}" for n in notes if n]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[str]], section: str | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if section is not None:
        header, rows = ["section"] + header, [[section] + r for r in rows]
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def paper_block(table: str, preset: str | None) -> tuple[list[str], list[list[str]]] | None:
    if not preset:
        return None
    from softcot.paper import load_paper_tables, paper_rows
    rows = paper_rows(table, preset)
    if not rows:
        return None
    cols = load_paper_tables()[table]["columns"]
    return ["paper: model / method"] + cols, [[f"{r['model']} / {r['method']}"] + [r["values"][c] for c in cols]
                                              for r in rows]


TITLES = {
    "table1": "Table 1 - hard inference (CoT hard, answer greedy): greedy pass@1, sample pass@1, sample pass@n (%)",
    "table2": "Table 2 - out of domain: accuracy, acc_norm (%) and per-token NLL of the correct answer",
    "table3_5": "Tables 3-5 - nine inference columns per test set (H/F/S = hard/fuzzy/soft CoT; G greedy, S sample)",
    "table6": "Table 6 - noise-scale ablation (sigma = gamma * rms(E))",
    "table8": "Table 8 - CoT-temperature ablation",
    "study": "Study - soft/fuzzy learning at this scale: each mode beside its null control (hard inference)",
}
PAPER_TABLE = {"table1": "table1", "table2": "table2", "table6": "table6", "table8": "table8"}


def build(which: str, inputs: list[str], test_sets: list[str], preset: str | None = None,
          methods: list[str] | None = None) -> tuple[str, str]:
    """Return (markdown, csv) for one table."""
    md, cs = [], []
    notes = ["mean ± sample std over seeds; one value where a single run exists."]
    if which == "table2":
        h, r = table2(load_ood(inputs))
        md.append(to_markdown(TITLES[which], h, r, notes)); cs.append(to_csv(h, r))
    elif which == "table1":
        h, r = table1(load_eval(inputs), test_sets)
        notes.append("verdict: greedy pass@1 gain over the base on the first test set, against twice the seed std.")
        md.append(to_markdown(TITLES[which], h, r, notes)); cs.append(to_csv(h, r))
    elif which == "table3_5":
        ev = load_eval(inputs)
        for i, d in enumerate(test_sets):
            h, r = nine(ev, d, methods_present(ev))
            md.append(to_markdown(f"Table {3 + i} - {d}: " + TITLES[which].split(" - ", 1)[1], h, r, notes))
            cs.append(to_csv(h, r, section=d))
    elif which == "study":
        ev = load_eval([p for p in inputs if p.endswith("summary.json")])
        h, r = table1(ev, test_sets[:1])
        md.append(to_markdown(TITLES[which], h, r, notes + [
            "A '-null' row is trained with advantages shuffled within each step: the same noise, no signal."]))
        cs.append(to_csv(h, r))
        for p in (p for p in inputs if p.endswith(".json") and not p.endswith("summary.json")):
            h2, r2 = snr_table(p)
            md.append(to_markdown("Gradient signal-to-noise on the base model (softcot diagnose)", h2, r2, [
                "snr = |mean g|^2 / mean |g|^2 over independent batches; the null row shuffles advantages "
                "(its snr is the noise floor, about 1/batches)."]))
            cs.append(to_csv(h2, r2, section="snr"))
            h3, r3 = diversity_table(p)
            if r3:
                md.append(to_markdown("Sources of sampled diversity on the base model (softcot diagnose --diversity)",
                                      h3, r3, ["cot_noise: sampled CoT (soft/fuzzy: Gaussian noise), greedy answer; "
                                               "answer_sampling: greedy CoT, answer at T = 1; both: both sampled. "
                                               "Per prompt: n samples; distinct counts are means per prompt."]))
                cs.append(to_csv(h3, r3, section="diversity"))
    elif which in ("table6", "table8"):
        ev = load_eval(inputs)
        h, r = nine(ev, test_sets[0], methods or methods_present(ev))
        md.append(to_markdown(TITLES[which] + f" - {test_sets[0]}", h, r, notes)); cs.append(to_csv(h, r))
    else:
        raise ValueError(f"unknown table {which!r}; allowed: {', '.join(TITLES)}")
    if which == "table3_5" and preset:
        for i in range(3):
            pb = paper_block(f"table{3 + i}", preset)
            if pb:
                md.append(to_markdown(f"Paper, Table {3 + i} (arXiv 2509.19170)", *pb))
    elif which in PAPER_TABLE:
        pb = paper_block(PAPER_TABLE[which], preset)
        if pb:
            md.append(to_markdown(f"Paper, {which.replace('table', 'Table ')} (arXiv 2509.19170)", *pb))
    return "\n".join(md), "".join(cs)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot tables", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=sorted(TITLES))
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--test-sets", nargs="+", default=["test"])
    ap.add_argument("--methods", nargs="*", help="row order (default: all found)")
    ap.add_argument("--preset", help="print the paper's rows for this preset beside ours")
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.md and PREFIX.csv")
    args = ap.parse_args(argv)
    md, cs = build(args.which, args.inputs, args.test_sets, args.preset, args.methods)
    write_text(args.out + ".md", md)
    write_text(args.out + ".csv", cs)
    print(md)
    return 0
