"""The estimators comparison's own table: every training method's pass@1 and pass@n in every sampled
inference setting, the new kinds' own settings (multiplex_sample, gumbel_sample) included.

    python -m softcot.estimators --inputs results/toy/eval/*/*/summary.json results/toy/estimators/eval/*/*/summary.json \\
        --test-sets test test_hard --out results/toy/estimators/tables/sampled

Tables 1-5, Table 2 and figures 2-4 of the comparison come from `softcot tables` / `softcot figures` over the
same inputs; this adds the columns those leave out. A cell is the mean ± sample std over seeds, "-" where a
model was not evaluated in that setting. Writes PREFIX.md and PREFIX.csv (docs/estimators.md).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys

from softcot.io import write_text
from softcot.results import fmt, load_eval, mean_std, methods_present, top_k
from softcot.schema import ALL_SETTINGS

SAMPLED = [s for s in ALL_SETTINGS if s.endswith("_sample")]     # hard, fuzzy, soft, multiplex, gumbel


def _cell(ev: dict, method: str, dataset: str, setting: str, at_n: bool) -> str:
    runs = ev.get((method, dataset, setting), [])
    vals = [top_k(r)[1] if at_n else r["pass1"] for r in runs]
    return fmt(*mean_std(vals), len(vals))


def table(ev: dict, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Rows: methods; columns: pass@1 then pass@n in each sampled setting evaluated on `dataset`."""
    settings = [s for s in SAMPLED if any(d == dataset and st == s for _, d, st in ev)]
    ns = {s: next(top_k(r)[0] for (_, d, st), runs in ev.items() if d == dataset and st == s for r in runs)
          for s in settings}
    header = ["method"] + [f"{s} S1" for s in settings] + [f"{s} S{ns[s]}" for s in settings]
    rows = [[m] + [_cell(ev, m, dataset, s, False) for s in settings] + [_cell(ev, m, dataset, s, True)
                                                                         for s in settings]
            for m in methods_present([k for k in ev if k[1] == dataset])]
    return header, rows


def build(inputs: list[str], test_sets: list[str]) -> tuple[str, str]:
    """(markdown, csv) of one table per test set."""
    ev = load_eval(inputs)
    md, buf = [], io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for d in test_sets:
        header, rows = table(ev, d)
        md += [f"### Sampled inference, every setting - {d}: pass@1 and pass@n (%)", "",
               "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md += ["", "mean ± sample std over seeds; '-': not evaluated in that setting. multiplex_sample and "
               "gumbel_sample are the new kinds' own inference settings (docs/estimators.md).", ""]
        w.writerow(["dataset"] + header)
        w.writerows([d] + r for r in rows)
    return "\n".join(md), buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softcot.estimators", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+", required=True, help="evaluation summary.json files")
    ap.add_argument("--test-sets", nargs="+", default=["test"])
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.md and PREFIX.csv")
    args = ap.parse_args(argv)
    md, cs = build(args.inputs, args.test_sets)
    write_text(args.out + ".md", md)
    write_text(args.out + ".csv", cs)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
