"""The paper's figures from the workflow's result files (PNG and PDF, written atomically).

    softcot figures fig2 --inputs results/toy/train/*/seed* --out results/toy/figures/fig2
    softcot figures fig3 --inputs results/toy/eval/*/*/summary.json --test-sets test test_hard --out ...
    softcot figures fig4 --inputs ... ;  fig5 --inputs results/toy/train/fuzzy-*/seed* ...

fig2: training reward (band: standard error over seeds) and greedy validation (error bars: seed std) per
      training mode, the base's validation as a grey dashed line.
fig3: pass@k gain over the base (k = 1, 2, 4, ..., n; error bars: seed std) per test set and inference kind.
fig4: mean CoT entropy by position (sampled inference), one line per training method; positions that few
      rollouts reach are shaded.
fig5: ablation curves (validation greedy pass@1 over training) for the noise scale and the CoT temperature.
`--style '{"dpi": 150, "width": 4.0, "height": 3.0, "font_size": 9}'` sets the look only.
"""
from __future__ import annotations

import argparse
import json
import math

from softcot.io import atomic_path
from softcot.results import load_eval, load_training, methods_present
from softcot.runs import BASE_METHOD, parse_variant

DEFAULT_STYLE = {"dpi": 150, "width": 4.0, "height": 3.0, "font_size": 9, "smooth": 5}
COLORS = {BASE_METHOD: "0.4", "hard": "tab:blue", "fuzzy": "tab:green", "soft": "tab:orange"}   # by kind
COLORS.update(multiplex="tab:purple", gumbel="tab:brown")    # the kinds beyond the paper


def _plt(style: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": style["font_size"], "axes.spines.top": False, "axes.spines.right": False,
                         "pdf.fonttype": 42, "svg.hashsalt": "softcot", "path.simplify": False})
    return plt


def _color(method: str):
    """A method's colour is its kind's: soft-null and soft-leverB16 share soft's (their line style differs)."""
    return COLORS[BASE_METHOD] if method == BASE_METHOD else COLORS.get(parse_variant(method).kind)


def _variant_linestyle(variant: str) -> str:
    v = parse_variant(variant)
    return "--" if v.null else (":" if v.lever else "-")


def _method_line(method: str) -> dict:
    """Plot style of one training method's line; the base is dashed and drawn on top, so that it stays
    visible where a method's best checkpoint is the base itself (identical curves)."""
    base = method == BASE_METHOD
    return {"color": _color(method), "linestyle": "--" if base else "-", "zorder": 3 if base else 2}


def _smooth(ys: list[float], w: int) -> list[float]:
    out = []
    for i in range(len(ys)):
        win = ys[max(0, i - w + 1):i + 1]
        out.append(sum(win) / len(win))
    return out


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def _band(runs: list[list[tuple[int, float]]]):
    """Steps every run has, and at each the mean and the standard error of the mean over runs (std / sqrt(n)):
    a band that shows how well the mean is known, not the spread of single seeds, which min..max bands drew
    so wide that they hid the other modes."""
    steps = sorted(set.intersection(*(set(s for s, _ in r) for r in runs))) if runs else []
    table = [dict(r) for r in runs]
    mean, se = [], []
    for s in steps:
        m, sd = _mean_sd([t[s] for t in table])
        mean.append(m)
        se.append(sd / math.sqrt(len(table)))
    return steps, mean, se


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **kw)


def fig_training(plt, style, train: dict, variants: list[str], title_suffix: str = ""):
    """Training reward (smoothed; band = standard error over seeds) and greedy validation (mean, error bars =
    seed std) per variant. The base is the validation at step 0, which each mode measures in its own greedy
    decoding (softcot.evaluate.greedy_accuracy): one grey line per distinct value, naming the modes it serves."""
    fig, axes = plt.subplots(1, 2, figsize=(2 * style["width"], style["height"]))
    shown = [v for v in variants if train.get(v)]
    base_at: dict[str, list[float]] = {}
    for i, v in enumerate(shown):
        runs = train[v]
        rew = [list(zip([m["step"] for m in r["metrics"]], _smooth([m["reward_mean"] for m in r["metrics"]],
                                                                     style["smooth"]))) for r in runs]
        s, m, se = _band(rew)
        ls = _variant_linestyle(v)
        axes[0].plot(s, m, label=f"{v} ({len(runs)} seeds)", color=_color(v), linestyle=ls, lw=1.2)
        axes[0].fill_between(s, [a - b for a, b in zip(m, se)], [a + b for a, b in zip(m, se)], alpha=0.15,
                             color=_color(v), lw=0)
        val = [[(x["step"], 100 * x["greedy_pass1"]) for x in r["val"]] for r in runs if r["val"]]
        if val:
            steps = sorted(set.intersection(*(set(st for st, _ in r) for r in val)))
            table = [dict(r) for r in val]
            stats = [_mean_sd([t[st] for t in table]) for st in steps]
            if steps and steps[0] == 0:
                base_at.setdefault(parse_variant(v).kind, []).append(stats[0][0])
            dodge = (i - (len(shown) - 1) / 2) * 0.012 * max(steps[-1], 1) if steps else 0.0
            axes[1].errorbar([st + dodge for st in steps], [a for a, _ in stats], yerr=[b for _, b in stats],
                             marker="o", ms=3, capsize=2, lw=1.2, label=v, color=_color(v), linestyle=ls)
    lines: dict[float, list[str]] = {}
    for kind, vals in base_at.items():
        lines.setdefault(round(sum(vals) / len(vals), 9), []).append(kind)
    for j, (value, kinds) in enumerate(lines.items()):
        axes[1].axhline(value, color=COLORS[BASE_METHOD], linestyle=("--", ":", "-.")[j % 3], lw=1, zorder=1,
                        label=f"base ({'/'.join(kinds)} greedy)")
    axes[0].set(xlabel="step", ylabel="mean training reward (smoothed)", title="training reward" + title_suffix)
    axes[1].set(xlabel="step", ylabel="greedy pass@1 (%)", title="greedy validation" + title_suffix)
    for ax in axes:        # below each panel: bands and error bars reach every corner, where a legend would hide them
        _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


KINDS = ["hard", "fuzzy", "soft"]


def passk_gains(ev: dict, dataset: str, kind: str) -> dict:
    """{method: (ks, mean gains, seed stds)} of pass@k over the base's (points), under `kind` sampling.
    Empty without a base."""
    base = ev.get((BASE_METHOD, dataset, f"{kind}_sample"), [])
    if not base:
        return {}
    ref = {int(k): 100 * v for k, v in base[0]["pass_at_k"].items()}
    out = {}
    for method in methods_present(ev):
        runs = ev.get((method, dataset, f"{kind}_sample"), [])
        if method == BASE_METHOD or not runs:
            continue
        ks = sorted(k for k in ref if all(str(k) in r["pass_at_k"] for r in runs))
        stats = [_mean_sd([100 * r["pass_at_k"][str(k)] - ref[k] for r in runs]) for k in ks]
        out[method] = (ks, [m for m, _ in stats], [sd for _, sd in stats])
    return out


def fig3(plt, style, ev: dict, test_sets: list[str]):
    """pass@k gain over the base (points; error bars = seed std) per test set (rows) and inference kind
    (columns); methods are dodged along k so that their bars do not hide one another."""
    fig, axes = plt.subplots(len(test_sets), len(KINDS), squeeze=False, sharey="row",
                             figsize=(style["width"] * len(KINDS), style["height"] * len(test_sets)))
    for i, d in enumerate(test_sets):
        for j, kind in enumerate(KINDS):
            ax = axes[i][j]
            gains = passk_gains(ev, d, kind)
            base = ev.get((BASE_METHOD, d, f"{kind}_sample"), [])
            ax.axhline(0, color=COLORS[BASE_METHOD], linestyle="--", lw=1, label="base (no finetune)")
            for m_i, (method, (ks, mean, sd)) in enumerate(gains.items()):
                dodge = 2 ** ((m_i - (len(gains) - 1) / 2) * 0.08)
                ax.errorbar([k * dodge for k in ks], mean, yerr=sd, marker="o", ms=3, capsize=2, lw=1.2,
                            label=f"train {method}", color=_color(method), linestyle=_variant_linestyle(method))
            ax.set_xscale("log", base=2)
            title = f"{d}: {kind} inference"
            if base:
                pk = {int(k): 100 * v for k, v in base[0]["pass_at_k"].items()}
                title += f"\nbase pass@1 {pk[min(pk)]:.1f}, pass@{max(pk)} {pk[max(pk)]:.1f}"
                ax.set_xticks(sorted(pk), [str(k) for k in sorted(pk)])
                ax.minorticks_off()
            ax.set(xlabel="k", ylabel="pass@k gain over base (points)" if j == 0 else "", title=title)
            _legend(ax)
    fig.tight_layout()
    return fig


FEW_ROLLOUTS = 0.1     # fig4 shades CoT positions that fewer than this share of the rollouts reach


def entropy_profile(runs: list[dict]) -> tuple[list[float | None], list[int]]:
    """Entropy by CoT position pooled over runs (weighted by how many rollouts reach each position) and the
    number of rollouts that reach it."""
    n = max(len(r["entropy_by_position"]) for r in runs)
    ent, cnt = [], []
    for t in range(n):
        pairs = [(r["entropy_by_position"][t], r.get("entropy_count_by_position", [1] * n)[t]) for r in runs
                 if t < len(r["entropy_by_position"]) and r["entropy_by_position"][t] is not None]
        c = sum(w for _, w in pairs)
        cnt.append(c)
        ent.append(sum(e * w for e, w in pairs) / c if c else None)
    return ent, cnt


def fig4(plt, style, ev: dict, test_sets: list[str]):
    """Mean CoT entropy by position under sampled inference; positions that fewer than FEW_ROLLOUTS of the
    rollouts reach are shaded and their points drawn faint (a mean over a handful of rollouts is noise)."""
    d = test_sets[0]
    fig, axes = plt.subplots(1, len(KINDS), squeeze=False, figsize=(style["width"] * len(KINDS), style["height"]))
    for j, kind in enumerate(KINDS):
        ax = axes[0][j]
        pooled: list[int] = []
        for method in methods_present(ev):
            runs = [r for r in ev.get((method, d, f"{kind}_sample"), []) if r.get("entropy_by_position")]
            if not runs:
                continue
            ent, cnt = entropy_profile(runs)
            pooled = [a + b for a, b in zip(pooled + [0] * (len(cnt) - len(pooled)), cnt + [0] * (len(pooled) - len(cnt)))]
            first_few = next((t for t, c in enumerate(cnt) if c < FEW_ROLLOUTS * max(cnt)), len(ent))
            xs = [t for t in range(first_few) if ent[t] is not None]
            ax.plot(xs, [ent[t] for t in xs], label=f"train {method}", **_method_line(method))
            rest = [t for t in range(max(0, first_few - 1), len(ent)) if ent[t] is not None]
            ax.plot(rest, [ent[t] for t in rest], alpha=0.25, **_method_line(method))
        if pooled:
            cut = next((t for t, c in enumerate(pooled) if c < FEW_ROLLOUTS * max(pooled)), None)
            if cut is not None:
                ax.axvspan(cut - 0.5, len(pooled) - 0.5, color="0.88", zorder=0, lw=0,
                           label=f"< {FEW_ROLLOUTS:.0%} of rollouts reach")
        ax.set(xlabel="CoT position", ylabel="entropy (nats)", title=f"{d}: {kind} sampling")
        _legend(ax)
    fig.tight_layout()
    return fig


def build(which: str, inputs: list[str], out: str, test_sets: list[str], style: dict) -> None:
    style = {**DEFAULT_STYLE, **style}
    plt = _plt(style)
    if which == "fig2":
        train = load_training(inputs)
        fig = fig_training(plt, style, train, methods_present([(v,) for v in train]))
    elif which == "fig5":
        train = load_training(inputs)
        fig = fig_training(plt, style, train, sorted(train), " (ablations)")
    elif which == "study":
        train = load_training(inputs)
        fig = fig_training(plt, style, train, sorted(train), " (vs null, levers)")
    elif which == "fig3":
        fig = fig3(plt, style, load_eval(inputs), test_sets)
    elif which == "fig4":
        fig = fig4(plt, style, load_eval(inputs), test_sets)
    else:
        raise ValueError(f"unknown figure {which!r}; allowed: fig2, fig3, fig4, fig5, study")
    for ext in ("png", "pdf"):
        with atomic_path(f"{out}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=style["dpi"], metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot figures", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["fig2", "fig3", "fig4", "fig5", "study"])
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--test-sets", nargs="+", default=["test"])
    ap.add_argument("--style", default="{}", help="JSON object of style settings")
    ap.add_argument("--out", required=True, help="output prefix: writes PREFIX.png and PREFIX.pdf")
    args = ap.parse_args(argv)
    build(args.which, args.inputs, args.out, args.test_sets, json.loads(args.style))
    print(f"{args.out}.png {args.out}.pdf")
    return 0
