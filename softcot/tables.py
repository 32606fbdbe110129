"""The paper's tables, rebuilt from the workflow's result files (Markdown, CSV and HTML, written atomically).

    softcot tables table1   --inputs results/toy/eval/*/*/summary.json --test-sets test test_hard --out results/toy/tables/table1
    softcot tables table3_5 --inputs ... ;  table2 --inputs results/toy/ood/*.json ;  table6 / table8 --inputs ...

Values are percentages (NLL: nats per token), mean ± sample std over seeds. Table 1: hard inference (greedy
pass@1, sample pass@1, sample pass@n). Tables 3-5: the nine columns (hard, fuzzy, soft inference x greedy,
sample, pass@n) per test set. Table 2: out of domain (accuracy, acc_norm, per-token NLL of the right answer).
Tables 6 and 8: the noise-scale and CoT-temperature ablations on the first test set. With `--preset NAME` the
paper's own rows for that setup (softcot/paper_tables.yaml) are printed beside ours.

Every table is built once as numbers (`Table` of `Cell`s) and rendered three ways: PREFIX.md for reading,
PREFIX.html for the Snakemake report, and PREFIX.csv for machines, one row per (section, dataset, method,
metric) with numeric columns mean, std, n and one column per seed (`seed0`, `seed1`, ...). `read_csv` reads
such a file back.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from softcot.io import write_text
from softcot.results import SETTING_COLS, load_eval, load_ood, methods_present, top_k
from softcot.runs import BASE_METHOD, parse_model

# ---------------------------------------------------------------------------------------------- numbers


@dataclass
class Cell:
    """One table cell: the values of the runs it aggregates (in the table's unit) and their seeds
    (None for the base model, or for a value measured once without a seed)."""
    values: list[float]
    seeds: list[int | None]
    spec: str = ".1f"                 # format of the Markdown text
    std_override: float | None = None  # a standard error, where the cell is a difference of two means

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample std over the runs (or the given standard error); nan below two runs (no spread to measure)."""
        if self.std_override is not None:
            return self.std_override
        if self.n < 2:
            return math.nan
        m = self.mean
        return math.sqrt(sum((x - m) ** 2 for x in self.values) / (self.n - 1))

    def text(self) -> str:
        if not self.values or math.isnan(self.mean):
            return "-"
        if math.isnan(self.std):
            return f"{self.mean:{self.spec}}"
        return f"{self.mean:{self.spec}} ± {self.std:{self.spec.lstrip('+')}}"


def single(value: float | None, spec: str) -> Cell:
    """A cell holding one measurement without a seed (nothing where `value` is None)."""
    return Cell([] if value is None else [float(value)], [None], spec)


def difference(a: Cell, b: Cell) -> Cell:
    """a - b, with the standard error sqrt(sd_a^2 / n_a + sd_b^2 / n_b) (nan below two seeds on either side)."""
    if not a.values or not b.values:
        return Cell([], [])
    se = math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n) if a.n > 1 and b.n > 1 else math.nan
    return Cell([a.mean - b.mean], [None], a.spec, std_override=se)


@dataclass
class Column:
    metric: str                       # e.g. "G1", "HS8", "Acc"
    dataset: str = ""                 # the test set or OOD set the metric is measured on; "" if none
    unit: str = "%"
    label: str = ""                   # Markdown/HTML header (default: "<dataset> <metric>" or the metric)

    @property
    def header(self) -> str:
        return self.label or (f"{self.dataset} {self.metric}" if self.dataset else self.metric)


@dataclass
class Table:
    """Rows are the key strings (one per `keys` entry) followed by one cell per column: a Cell, or a string
    (a verdict, a paper value) that the CSV leaves out."""
    section: str
    title: str
    keys: list[str]
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    in_csv: bool = True               # False for the paper's own rows: they are not our measurements

    @property
    def header(self) -> list[str]:
        return self.keys + [c.header for c in self.columns]


def _seed(model: str | None) -> int | None:
    return parse_model(model).seed if model else None


def cell(runs: list[dict], value, spec: str = ".1f") -> Cell:
    """A cell of `value(run)` over `runs` (summary dicts naming their "model"), in seed order."""
    pairs = sorted(((_seed(r.get("model")), value(r)) for r in runs), key=lambda p: (p[0] is not None, p[0] or 0))
    pairs = [(s, v) for s, v in pairs if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return Cell([v for _, v in pairs], [s for s, _ in pairs], spec)


def _pass1(r: dict) -> float:
    return 100 * r["pass1"]


def _passn(r: dict) -> float:
    return 100 * top_k(r)[1]


def _n_of(ev: dict, dataset: str, kind: str) -> int:
    for (m, d, s), runs in ev.items():
        if d == dataset and s == f"{kind}_sample" and runs:
            return top_k(runs[0])[0]
    return 0


# ---------------------------------------------------------------------------------------------- tables

VERDICT_RULE = "improved: mean gain > 2 x its seed std (and > 0); one seed: no spread to judge"


def verdict(gain: Cell) -> str:
    """The verdict on a method's greedy pass@1 gain over the base (per-seed gains in `gain`)."""
    if not gain.values:
        return "-"
    if gain.n < 2:
        return "one seed: no spread"
    return "improved (> 2 sd)" if gain.mean > 0 and gain.mean > 2 * gain.std else "no improvement at this scale"


def table1(ev: dict, test_sets: list[str], section: str = "table1", title: str = "") -> Table:
    cols = []
    for d in test_sets:
        n = _n_of(ev, d, "hard")
        cols += [Column("G1", d), Column("S1", d), Column(f"S{n}", d)]
    first = test_sets[0]
    cols += [Column("G1 gain vs base", first, "points", f"Δ G1 vs base ({first})"), Column("verdict", first, "", "verdict")]
    t = Table(section, title or TITLES["table1"], ["method"], cols, notes=[
        "mean ± sample std over seeds; one value where a single run exists.",
        f"Δ: greedy pass@1 gain over the base on {first}, per seed; verdict: {VERDICT_RULE}."])
    base = cell(ev.get((BASE_METHOD, first, "hard_greedy"), []), _pass1)
    for method in methods_present(ev):
        row = [method]
        for d in test_sets:
            row += [cell(ev.get((method, d, "hard_greedy"), []), _pass1),
                    cell(ev.get((method, d, "hard_sample"), []), _pass1),
                    cell(ev.get((method, d, "hard_sample"), []), _passn)]
        if method == BASE_METHOD or base.n != 1:
            row += ["", ""]
        else:
            g1 = cell(ev.get((method, first, "hard_greedy"), []), _pass1)
            gain = Cell([v - base.mean for v in g1.values], g1.seeds, "+.1f")
            row += [gain, verdict(gain)]
        t.rows.append(row)
    return t


def nine(ev: dict, dataset: str, methods: list[str], section: str, title: str) -> Table:
    cols = []
    for kind, c in SETTING_COLS:
        n = _n_of(ev, dataset, kind)
        cols += [Column(f"{c}G", dataset), Column(f"{c}S", dataset), Column(f"{c}S{n}", dataset)]
    for col in cols:
        col.label = col.metric
    t = Table(section, title, ["method"], cols, notes=["mean ± sample std over seeds; one value where a single run "
                                                       "exists. H/F/S: hard/fuzzy/soft CoT; G greedy pass@1, S sample "
                                                       "pass@1, Sn sample pass@n."])
    for method in methods:
        row = [method]
        for kind, _ in SETTING_COLS:
            row += [cell(ev.get((method, dataset, f"{kind}_greedy"), []), _pass1),
                    cell(ev.get((method, dataset, f"{kind}_sample"), []), _pass1),
                    cell(ev.get((method, dataset, f"{kind}_sample"), []), _passn)]
        t.rows.append(row)
    return t


OOD_METRICS = (("Acc", "acc", 100, "%", ".2f"), ("AccNorm", "acc_norm", 100, "%", ".2f"),
               ("NLL", "nll", 1, "nats/token", ".3f"))


def table2(ood: dict) -> Table:
    benches = sorted({b for _, b in ood})
    cols = [Column(name, b, unit) for b in benches for name, _, _, unit, _ in OOD_METRICS]
    t = Table("table2", TITLES["table2"], ["method"], cols,
              notes=["mean ± sample std over seeds; one value where a single run exists."])
    for method in methods_present([(m,) for m, _ in ood]):
        row = [method]
        for b in benches:
            for _, key, scale, _, spec in OOD_METRICS:
                row.append(cell(ood.get((method, b), []), lambda r, k=key, s=scale: s * r[k], spec))
        t.rows.append(row)
    return t


SNR_COLUMNS = (("snr (loss)", ("total", "snr"), ".4f"), ("snr null", ("null", "snr"), ".4f"),
               ("unbiased snr", ("total", "snr_unbiased"), ".4f"), ("unbiased null", ("null", "snr_unbiased"), ".4f"),
               ("snr CoT term", ("cot", "snr"), ".4f"), ("snr answer term", ("answer", "snr"), ".4f"),
               ("|g| CoT term", ("cot", "grad_norm"), ".3g"), ("|g| answer term", ("answer", "grad_norm"), ".3g"),
               ("cos (pairs)", ("total", "cos"), ".3f"))


def snr_table(path: str) -> Table:
    import json
    d = json.loads(Path(path).read_text())
    cols = [Column(name, unit="") for name, _, _ in SNR_COLUMNS] + [Column("reward", unit="reward")]
    t = Table("snr", "Gradient signal-to-noise on the base model (softcot diagnose)", ["mode"], cols, notes=[
        "snr = |mean g|^2 / mean |g|^2 over independent batches; the null row shuffles advantages "
        "(its snr is the noise floor, about 1/batches)."])
    for mode, r in d["modes"].items():
        t.rows.append([mode] + [single(r[a][b], spec) for _, (a, b), spec in SNR_COLUMNS]
                      + [single(r["reward_mean"], ".1f")])
    return t


def diversity_table(path: str) -> Table:
    """Where sampled diversity comes from (softcot diagnose --diversity): one row per mode and condition."""
    import json
    d = json.loads(Path(path).read_text())
    cols = [Column("pass@1"), Column("pass@n"), Column("distinct answers", unit="count"),
            Column("distinct CoTs", unit="count")]
    t = Table("diversity", "Sources of sampled diversity on the base model (softcot diagnose --diversity)",
              ["mode", "condition"], cols, notes=[
                  "cot_noise: sampled CoT (soft/fuzzy: Gaussian noise), greedy answer; answer_sampling: greedy CoT, "
                  "answer at T = 1; both: both sampled. Per prompt: n samples; distinct counts are means per prompt."])
    for mode, r in d["modes"].items():
        for cond, v in r.get("diversity", {}).items():
            pn = next(val for key, val in v.items() if key.startswith("pass@"))
            t.rows.append([mode, cond, single(100 * v["pass1"], ".1f"), single(100 * pn, ".1f"),
                           single(v["distinct_answers"], ".2f"), single(v["distinct_cots"], ".2f")])
    return t


def paper_block(table: str, preset: str | None) -> Table | None:
    """The paper's own rows of `table` for `preset`, as printed (strings), or None."""
    if not preset:
        return None
    from softcot.paper import load_paper_tables, paper_rows
    rows = paper_rows(table, preset)
    if not rows:
        return None
    cols = load_paper_tables()[table]["columns"]
    t = Table(f"paper {table}", f"Paper, {table.replace('table', 'Table ')} (arXiv 2509.19170)",
              ["paper: model / method"], [Column(c, label=c) for c in cols], in_csv=False)
    t.rows = [[f"{r['model']} / {r['method']}"] + [r["values"][c] for c in cols] for r in rows]
    return t


TITLES = {
    "table1": "Table 1 - hard inference (CoT hard, answer greedy): greedy pass@1, sample pass@1, sample pass@n (%)",
    "table2": "Table 2 - out of domain: accuracy, acc_norm (%) and per-token NLL of the correct answer",
    "table3_5": "Tables 3-5 - nine inference columns per test set (H/F/S = hard/fuzzy/soft CoT; G greedy, S sample)",
    "table6": "Table 6 - noise-scale ablation (sigma = gamma * rms(E))",
    "table8": "Table 8 - CoT-temperature ablation",
    "study": "Study - soft/fuzzy learning at this scale: each mode beside its null control (hard inference)",
}
PAPER_TABLE = {"table1": "table1", "table2": "table2", "table6": "table6", "table8": "table8"}


def tables(which: str, inputs: list[str], test_sets: list[str], preset: str | None = None,
           methods: list[str] | None = None) -> list[Table]:
    """The tables of one target, ours first, then the paper's rows where a preset names them."""
    out: list[Table] = []
    if which == "table2":
        out.append(table2(load_ood(inputs)))
    elif which == "table1":
        out.append(table1(load_eval(inputs), test_sets))
    elif which == "table3_5":
        ev = load_eval(inputs)
        for i, d in enumerate(test_sets):
            out.append(nine(ev, d, methods_present(ev), f"table{3 + i}",
                            f"Table {3 + i} - {d}: " + TITLES[which].split(" - ", 1)[1]))
    elif which == "study":
        ev = load_eval([p for p in inputs if p.endswith("summary.json")])
        t = table1(ev, test_sets[:1], "study", TITLES["study"])
        t.notes.append("A '-null' row is trained with advantages shuffled within each step: the same noise, no signal.")
        out.append(t)
        for p in (p for p in inputs if p.endswith(".json") and not p.endswith("summary.json")):
            out.append(snr_table(p))
            div = diversity_table(p)
            if div.rows:
                out.append(div)
    elif which in ("table6", "table8"):
        ev = load_eval(inputs)
        out.append(nine(ev, test_sets[0], methods or methods_present(ev), which, TITLES[which] + f" - {test_sets[0]}"))
    else:
        raise ValueError(f"unknown table {which!r}; allowed: {', '.join(TITLES)}")
    names = [f"table{3 + i}" for i in range(3)] if which == "table3_5" else [PAPER_TABLE.get(which)]
    for name in names:
        pb = paper_block(name, preset) if name else None
        if pb:
            out.append(pb)
    return out


# ---------------------------------------------------------------------------------------------- renderers


def _text(c) -> str:
    return c.text() if isinstance(c, Cell) else str(c)


def to_markdown(t: Table) -> str:
    lines = [f"### {t.title}", "", "| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(_text(c) for c in r) + " |" for r in t.rows]
    lines += [""] + [n for n in t.notes if n]
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    """A CSV number: 10 significant digits (drops float noise such as 43.75000000000002), '' for nan."""
    return "" if x is None or math.isnan(x) else format(x, ".10g")


def to_csv(tables: list[Table]) -> str:
    """One row per (section, dataset, key..., metric): unit, mean, std, n and the value of each seed."""
    ours = [t for t in tables if t.in_csv]
    keys = list(dict.fromkeys(k for t in ours for k in t.keys))
    seeds = sorted({s for t in ours for r in t.rows for c in r if isinstance(c, Cell) for s in c.seeds
                    if s is not None})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "dataset", *keys, "metric", "unit", "mean", "std", "n", *[f"seed{s}" for s in seeds]])
    for t in ours:
        for r in t.rows:
            key = dict(zip(t.keys, r))
            for col, c in zip(t.columns, r[len(t.keys):]):
                if not isinstance(c, Cell) or not c.values:
                    continue
                by_seed = {s: v for s, v in zip(c.seeds, c.values) if s is not None}
                w.writerow([t.section, col.dataset, *[key.get(k, "") for k in keys], col.metric, col.unit,
                            _num(c.mean), _num(c.std), c.n, *[_num(by_seed.get(s, math.nan)) for s in seeds]])
    return buf.getvalue()


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a table CSV, with mean/std as floats (nan if empty), n as int and `values` (seed -> value)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            flt = lambda s: float(s) if s not in ("", None) else math.nan  # noqa: E731
            row = {**r, "mean": flt(r["mean"]), "std": flt(r["std"]), "n": int(r["n"])}
            row["values"] = {int(k[4:]): float(v) for k, v in r.items() if k.startswith("seed") and v not in ("", None)}
            rows.append(row)
    return rows


HTML_STYLE = ("body{font-family:system-ui,sans-serif;font-size:14px;margin:1em}"
              "table{border-collapse:collapse;margin:0.5em 0 0.5em 0}"
              "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
              "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
              "p.note{color:#555;font-size:12px;margin:0.2em 0}")


def to_html(tables: list[Table], title: str) -> str:
    """A standalone HTML page of the tables (what the Snakemake report embeds)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{HTML_STYLE}</style></head><body>"]
    for t in tables:
        parts.append(f"<h3>{html.escape(t.title)}</h3><table><thead><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr></thead><tbody>")
        for r in t.rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(_text(c))}</td>" for c in r) + "</tr>")
        parts.append("</tbody></table>" + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in t.notes if n))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build(which: str, inputs: list[str], test_sets: list[str], preset: str | None = None,
          methods: list[str] | None = None) -> tuple[str, str, str]:
    """Return (markdown, csv, html) for one target."""
    ts = tables(which, inputs, test_sets, preset, methods)
    return "\n".join(to_markdown(t) for t in ts), to_csv(ts), to_html(ts, TITLES[which])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot tables", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=sorted(TITLES))
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--test-sets", nargs="+", default=["test"])
    ap.add_argument("--methods", nargs="*", help="row order (default: all found)")
    ap.add_argument("--preset", help="print the paper's rows for this preset beside ours")
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.md, PREFIX.csv and PREFIX.html")
    args = ap.parse_args(argv)
    md, cs, ht = build(args.which, args.inputs, args.test_sets, args.preset, args.methods)
    write_text(args.out + ".md", md)
    write_text(args.out + ".csv", cs)
    write_text(args.out + ".html", ht)
    print(md)
    return 0
