"""The study's own tables and figures, rebuilt from result files (Markdown + numeric CSV, PNG + PDF, atomically).

    softcot study gains --inputs results/toy/eval/*/test/summary.json results/toy/train/*/seed* \
        --compare soft=soft-null soft-leverlong=soft-leverlongnull --test-set test --out results/toy/study/gains
    softcot study positions --inputs results/toy/study/positions.json --out results/toy/study/positions
    softcot study scale --inputs results/toy/study/diagnose/*.json results/toy/eval/*/test/summary.json \
        --test-set test --out results/toy/study/scale        (scale-figure: the same inputs, the figure)

gains      per training setup (the default settings, or a study lever) and mode: the hard-greedy pass@1 gain
           on the test set of the best-validation checkpoint over its base, per seed, beside its null
           control's (advantages shuffled: same noise, no signal), their difference with its standard error,
           and the step of each seed's best checkpoint (0: training never beat the base on validation).
positions  the CoT term's gradient split over CoT steps (softcot diagnose --positions), per mode.
scale      per base model (the default's and those of study.scale.bases): parameters, the base's pass@1, each
           mode's gain after RL at the default budget and its gap to hard's, the unbiased gradient SNR and the
           CoT-term / answer-term gradient ratio (softcot diagnose on that base). The figure draws gain, SNR
           and ratio against the parameter count.
CSV rows: section, dataset, the table's keys, metric, unit, mean, std, n, then one column per seed.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from softcot.io import atomic_path, write_text
from softcot.runs import KINDS, base_of, parse_model, parse_variant
from softcot.tables import Cell, Column, Table, difference, single, to_csv, to_markdown

SETTING = "hard_greedy"           # the paper's headline inference: hard CoT, greedy answer


def _col(metric: str, unit: str, label: str = "", dataset: str = "") -> Column:
    return Column(metric, dataset, unit, label)


# ---------------------------------------------------------------------------------------------- inputs

def load_pass1(paths: list[str], test_set: str) -> dict[str, float]:
    """{model: hard-greedy pass@1 in %} from .../eval/<model>/<test_set>/summary.json files."""
    out = {}
    for p in map(Path, paths):
        if p.name != "summary.json" or p.parent.name != test_set:
            continue
        out[p.parent.parent.name] = 100 * json.loads(p.read_text())["settings"][SETTING]["pass1"]
    return out


def load_best_steps(paths: list[str]) -> dict[str, int]:
    """{model: step of the best-validation checkpoint} from training folders .../train/<variant>/seed<k>."""
    out = {}
    for d in map(Path, paths):
        if (d / "summary.json").exists() and d.name.startswith("seed"):
            out[f"{d.parent.name}_{d.name}"] = json.loads((d / "summary.json").read_text())["best_step"]
    return out


def _base_value(pass1: dict, base: str, model: str) -> float:
    if base not in pass1:
        raise ValueError(f"no evaluation of {base!r} (the base of {model!r}) among the inputs: add "
                         f".../eval/{base}/<test set>/summary.json")
    return pass1[base]


def gain_stat(pass1: dict, variant: str) -> tuple[Cell, Cell]:
    """(pass@1, gain over the base) per seed of `variant`, in seed order."""
    models = sorted((m for m in pass1 if not parse_model(m).is_base and str(parse_model(m).variant) == variant),
                    key=lambda m: parse_model(m).seed)
    seeds = [parse_model(m).seed for m in models]
    vals = [pass1[m] for m in models]
    gains = [pass1[m] - _base_value(pass1, base_of(m), m) for m in models]
    return Cell(vals, seeds), Cell(gains, seeds, "+.1f")


def _setup(variant: str) -> str:
    v = parse_variant(variant)
    return "default" if not v.tag else (v.lever or v.tag)


# ---------------------------------------------------------------------------------------------- tables

def verdict(diff: Cell) -> str:
    if not diff.values:
        return "-"
    if math.isnan(diff.std):
        return "one seed: no spread"
    if diff.mean > 2 * diff.std:
        return "above null (> 2 se)"
    return "below null (> 2 se)" if diff.mean < -2 * diff.std else "within null"


def gains_table(pass1: dict, best: dict, compare: list[tuple[str, str | None]], test_set: str) -> Table:
    cols = [_col(*c, dataset=test_set) for c in (
        ("G1", "%", f"{test_set} G1"), ("G1 gain vs base", "points", "gain vs base"),
        ("null G1 gain vs base", "points", "null control's gain"),
        ("gain minus null gain", "points (std: standard error)", "gain − null gain"), ("verdict", "", "verdict"),
        ("best step", "steps", "best steps"))]
    t = Table("gains", f"Study - test gain of the best checkpoint over the base, beside the null control "
                       f"({test_set}, hard CoT, greedy answer, pass@1)", ["setup", "mode", "null control"], cols,
              notes=[
                  "gain: per seed, the trained model's (its best-validation checkpoint) greedy pass@1 minus its "
                  "base's, in points, mean ± sample std over seeds; null control: the same training with "
                  "advantages shuffled within each step (same noise, no signal).",
                  "gain − null gain: the difference of the means ± its standard error, sqrt(sd²/n + sd_null²/n_null);"
                  " verdict: above null when the difference exceeds twice its standard error.",
                  "best steps: each seed's best-validation step; 0 means training never beat the base on validation "
                  "(the model is the base)."])
    for variant, null in compare:
        g1, gain = gain_stat(pass1, variant)
        ngain = gain_stat(pass1, null)[1] if null else Cell([], [])
        diff = difference(gain, ngain)
        have = [s for s in gain.seeds if f"{variant}_seed{s}" in best]
        steps = Listed([float(best[f"{variant}_seed{s}"]) for s in have], have, ".0f")
        t.rows.append([_setup(variant), parse_variant(variant).kind, null or "-", g1, gain, ngain, diff,
                       verdict(diff), steps])
    return t


class Listed(Cell):
    """A Cell whose Markdown text lists its values (each seed's best step) instead of mean ± std."""

    def text(self) -> str:
        return ", ".join(f"{v:{self.spec}}" for v in self.values) or "-"


def positions_table(path: str) -> Table:
    d = json.loads(Path(path).read_text())
    cols = [_col("steps per batch", "count"), _col("share of steps", "fraction"),
            _col("share of |g_CoT|^2", "fraction", "share of \\|g_CoT\\|²"),
            _col("|g|", "gradient norm", "\\|g\\|"), _col("max |g|", "gradient norm", "max \\|g\\| (a batch)"),
            _col("|g| / |g_answer|", "ratio", "\\|g\\| / \\|g_answer\\|"), _col("unbiased snr", "")]
    some = next(iter(d["modes"].values()))["positions"]
    t = Table("positions", "Study - where the CoT term's gradient comes from: its split over CoT steps on the "
                           "base model (softcot diagnose --positions)", ["mode", "CoT steps"], cols, notes=[
                  f"B x G = {d['config']['prompts']} x {d['config']['group']} rollouts per batch, "
                  f"{some['batches']} batches; buckets by CoT step from the CoT's start, the step that completed "
                  "the marker apart ('marker'); steps after a row's CoT ended are not scored (no gradient).",
                  "share of |g_CoT|²: <g_bucket, g_CoT> / |g_CoT|², summing to 1 over the buckets; a bucket whose "
                  "share exceeds its share of steps carries more than its steps' worth. |g| / |g_answer|: against "
                  "the answer term's gradient on the same batch; 'all' is the whole CoT term."])
    for mode in _kinds(d["modes"]):
        p = d["modes"][mode]["positions"]
        for name in _labels(p):
            b = p["buckets"][name]
            t.rows.append([mode, name, single(b["slots"], ".1f"), single(b["steps_fraction"], ".3f"), single(b["share"], "+.3f"),
                           single(b["grad_norm"], ".3g"), single(b.get("grad_norm_max"), ".3g"), single(b["vs_answer"], ".3g"),
                           single(b["snr_unbiased"], ".3f")])
        t.rows.append([mode, "all", single(sum(b["slots"] for b in p["buckets"].values()), ".1f"), single(1.0, ".3f"),
                       single(1.0, "+.3f"), single(p["cot"]["grad_norm"], ".3g"), single(None, ".3g"),
                       single(p["cot"]["vs_answer"], ".3g"), single(p["cot"]["snr_unbiased"], ".3f")])
    return t


def _labels(p: dict) -> list[str]:
    """The buckets in CoT order (a JSON writer may have sorted the mapping's keys)."""
    return p.get("labels") or list(p["buckets"])


@dataclass
class ScalePoint:
    """One base model and, per mode, its RL gains (per seed) and its gradient diagnostics."""
    base: str
    size: dict
    base_pass1: float
    gains: dict[str, Cell]
    pass1: dict[str, Cell]
    diag: dict

    @property
    def n_params(self) -> int:
        return self.size["n_params"]


def load_scale(paths: list[str], test_set: str) -> list[ScalePoint]:
    """Scale points, smallest model first, from diagnose files (<base>.json) and evaluation summaries."""
    diags = {}
    for p in map(Path, paths):
        if p.suffix == ".json" and p.name != "summary.json":
            m = parse_model(p.stem)
            if not m.is_base:
                raise ValueError(f"{p}: a scale diagnostic is named after its base model (base.json, "
                                 f"base-scale<name>.json), not {p.stem!r}")
            diags[p.stem] = json.loads(p.read_text())
    pass1 = load_pass1(paths, test_set)
    points = []
    for base, d in diags.items():
        if "model_size" not in d:
            raise ValueError(f"the diagnostic of {base!r} names no model size: rerun softcot diagnose on it")
        scale = parse_model(base).scale
        own = f"scale{scale}" if scale else ""          # the default training on this base, nothing else
        runs = [m for m in pass1 if not parse_model(m).is_base and base_of(m) == base
                and parse_model(m).variant.tag == own]
        gains, p1 = {}, {}
        for kind in _kinds({parse_model(m).variant.kind for m in runs} | set(d["modes"])):
            variants = {str(parse_model(m).variant) for m in runs if parse_model(m).variant.kind == kind}
            if variants:
                p1[kind], gains[kind] = gain_stat(pass1, variants.pop())
        points.append(ScalePoint(base, d["model_size"], pass1.get(base, math.nan), gains, p1, d["modes"]))
    return sorted(points, key=lambda pt: pt.n_params)


def _kinds(found) -> list[str]:
    return [k for k in KINDS if k in found] + sorted(set(found) - set(KINDS))


def _snr(pt: ScalePoint, kind: str, term: str = "total") -> float | None:
    return pt.diag.get(kind, {}).get(term, {}).get("snr_unbiased")


def _ratio(pt: ScalePoint, kind: str) -> float | None:
    r = pt.diag.get(kind, {})
    if "cot" not in r or not r["answer"]["grad_norm"]:
        return None
    return r["cot"]["grad_norm"] / r["answer"]["grad_norm"]


def scale_table(points: list[ScalePoint], test_set: str) -> Table:
    cols = [_col(*c, dataset=test_set) for c in (
        ("params", "count"), ("hidden size", "count", "d"), ("base G1", "%", "base G1"), ("G1", "%", f"{test_set} G1"),
        ("G1 gain vs base", "points", "gain vs base"),
        ("gain minus hard gain", "points (std: standard error)", "gain − hard's gain"),
        ("unbiased snr", "", "unbiased SNR"), ("unbiased snr null", "", "null SNR"),
        ("CoT/answer gradient ratio", "ratio", "\\|g_CoT\\| / \\|g_answer\\|"))]
    t = Table("scale", f"Study - model scale: RL gain at the default budget and gradient diagnostics per base "
                       f"model ({test_set}, hard CoT, greedy answer, pass@1)", ["base", "mode"], cols,
              notes=[
                  "gain: per seed, the trained model's (its best-validation checkpoint) greedy pass@1 minus its "
                  "base's, in points; gain − hard's gain: the mode's gap to hard training on the same base "
                  "(± standard error). SNR and |g_CoT| / |g_answer|: softcot diagnose on the base at the "
                  "training batch (the null SNR shuffles advantages: the noise floor).",
                  "Does the soft/fuzzy gap to hard narrow as the model grows? Read gain − hard's gain down each "
                  "mode's rows."])
    for pt in points:
        hard = pt.gains.get("hard")
        for kind in _kinds(set(pt.gains) | set(pt.diag)):
            gain = pt.gains.get(kind, Cell([], []))
            gap = difference(gain, hard) if hard is not None and kind != "hard" else Cell([], [])
            t.rows.append([pt.base, kind, single(pt.n_params, ".3g"), single(pt.size.get("hidden_size"), ".0f"),
                           single(pt.base_pass1, ".1f"), pt.pass1.get(kind, Cell([], [])), gain, gap,
                           single(_snr(pt, kind), ".4f"), single(_snr(pt, kind, "null"), ".4f"),
                           single(_ratio(pt, kind), ".3g")])
    return t


# ---------------------------------------------------------------------------------------------- figures

def _style(style: dict):
    from softcot.figures import DEFAULT_STYLE, _plt
    style = {**DEFAULT_STYLE, **style}
    return style, _plt(style)


def _color(kind: str):
    from softcot.figures import COLORS
    return COLORS.get(kind)


def _save(fig, plt, out: str, style: dict) -> None:
    for ext in ("png", "pdf"):
        with atomic_path(f"{out}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=style["dpi"],
                        metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
    plt.close(fig)


def scale_figure(points: list[ScalePoint], out: str, style: dict) -> None:
    """Three panels against the parameter count (log): test gain per mode (seed std bars), unbiased SNR per
    mode (dotted: the null control's), and the CoT-term / answer-term gradient ratio (log)."""
    style, plt = _style(style)
    fig, axes = plt.subplots(1, 3, figsize=(3 * style["width"], style["height"]))
    kinds = _kinds({k for pt in points for k in set(pt.gains) | set(pt.diag)})
    x = [pt.n_params for pt in points]
    for kind in kinds:
        c = _color(kind)
        pts = [(pt.n_params, pt.gains[kind]) for pt in points if kind in pt.gains]
        if pts:
            axes[0].errorbar([p for p, _ in pts], [g.mean for _, g in pts],
                             yerr=[0 if math.isnan(g.std) else g.std for _, g in pts], marker="o", ms=4, capsize=3,
                             color=c, label=kind)
        for term, ls in (("total", "-"), ("null", ":")):
            pts = [(pt.n_params, _snr(pt, kind, term)) for pt in points if _snr(pt, kind, term) is not None]
            if pts:
                axes[1].plot(*zip(*pts), marker="o" if term == "total" else None, ms=4, color=c, linestyle=ls,
                             label=kind if term == "total" else None)
        pts = [(pt.n_params, _ratio(pt, kind)) for pt in points if _ratio(pt, kind)]
        if pts:
            axes[2].plot(*zip(*pts), marker="o", ms=4, color=c, label=kind)
    axes[0].axhline(0, color="0.5", lw=0.8)
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[2].axhline(1, color="0.5", lw=0.8, linestyle="--")
    labels = [f"{n / 1e6:.2g}M\nd={pt.size.get('hidden_size')}" for n, pt in zip(x, points)]
    for ax, ylabel, title in ((axes[0], "greedy pass@1 gain over the base (points)", "RL gain at the default budget"),
                              (axes[1], "unbiased gradient SNR", "gradient SNR (dotted: null)"),
                              (axes[2], "|g_CoT| / |g_answer|", "CoT term vs answer term")):
        ax.set_xscale("log")
        ax.set_xticks(x, labels)
        ax.minorticks_off()
        ax.set(xlabel="parameters", ylabel=ylabel, title=title)
        ax.legend(fontsize="small")
    axes[2].set_yscale("log")
    fig.tight_layout()
    _save(fig, plt, out, style)


def positions_figure(path: str, out: str, style: dict) -> None:
    """Two panels over the CoT-step buckets: each bucket's share of |g_CoT|^2 per mode (bars; crosses: its share
    of the scored steps), and |g_bucket| / |g_answer| per mode (log)."""
    d = json.loads(Path(path).read_text())
    style, plt = _style(style)
    modes = _kinds(d["modes"])
    labels = _labels(d["modes"][modes[0]]["positions"])
    fig, axes = plt.subplots(1, 2, figsize=(2 * style["width"], style["height"]))
    w = 0.8 / max(1, len(modes))
    for i, mode in enumerate(modes):
        b = d["modes"][mode]["positions"]["buckets"]
        xs = [j + (i - (len(modes) - 1) / 2) * w for j in range(len(labels))]
        axes[0].bar(xs, [b[k]["share"] for k in labels], width=w, color=_color(mode), label=mode)
        axes[0].plot(xs, [b[k]["steps_fraction"] for k in labels], "kx", ms=4,
                     label="share of steps" if i == 0 else None)
        axes[1].plot(range(len(labels)), [b[k]["vs_answer"] or math.nan for k in labels], marker="o", ms=4,
                     color=_color(mode), label=mode)
    axes[1].axhline(1, color="0.5", lw=0.8, linestyle="--")
    axes[1].set_yscale("log")
    if axes[1].get_ylim()[0] < 1e-2:          # a bucket with ~no gradient (e.g. a certain first token) sits below
        axes[1].set_ylim(bottom=1e-2)
    for ax, ylabel in ((axes[0], "share of |g_CoT|²"), (axes[1], "|g_bucket| / |g_answer| (below: ~0)")):
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel="CoT step", ylabel=ylabel)
        ax.legend(fontsize="small")
    axes[0].set_title("where the CoT gradient comes from")
    axes[1].set_title("each bucket against the answer term")
    fig.tight_layout()
    _save(fig, plt, out, style)


# ---------------------------------------------------------------------------------------------- command

def _compare(items: list[str]) -> list[tuple[str, str | None]]:
    out = []
    for item in items:
        variant, _, null = item.partition("=")
        for name in filter(None, (variant, null)):
            parse_variant(name)                       # a bad name fails here, naming the allowed forms
        out.append((variant, null or None))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["gains", "positions", "scale", "scale-figure"])
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--test-set", default="test")
    ap.add_argument("--compare", nargs="*", default=[], metavar="VARIANT[=NULL]",
                    help="gains: the rows, each a variant and its null control, e.g. soft=soft-null")
    ap.add_argument("--style", default="{}", help="figures: JSON object of style settings")
    ap.add_argument("--out", required=True, help="output prefix: PREFIX.md and PREFIX.csv, or PREFIX.png/.pdf")
    args = ap.parse_args(argv)
    style = json.loads(args.style)
    if args.which == "scale-figure":
        scale_figure(load_scale(args.inputs, args.test_set), args.out, style)
        print(f"{args.out}.png {args.out}.pdf")
        return 0
    if args.which == "gains":
        if not args.compare:
            ap.error("gains: --compare names the rows, e.g. --compare soft=soft-null")
        tables = [gains_table(load_pass1(args.inputs, args.test_set), load_best_steps(args.inputs),
                              _compare(args.compare), args.test_set)]
    elif args.which == "positions":
        tables = [positions_table(p) for p in args.inputs]
        positions_figure(args.inputs[0], args.out, style)
    else:
        tables = [scale_table(load_scale(args.inputs, args.test_set), args.test_set)]
    md = "\n".join(to_markdown(t) for t in tables)
    write_text(args.out + ".md", md)
    write_text(args.out + ".csv", to_csv(tables))
    print(md)
    return 0
