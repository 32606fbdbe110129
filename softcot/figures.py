"""The paper's figures from the workflow's result files (PNG and PDF, written atomically).

    softcot figures fig2 --inputs results/toy/train/*/seed* --out results/toy/figures/fig2
    softcot figures fig3 --inputs results/toy/eval/*/*/summary.json --test-sets test test_hard --out ...
    softcot figures fig4 --inputs ... ;  fig5 --inputs results/toy/train/fuzzy-*/seed* ...

fig2: training reward and greedy-validation curves per training mode (mean over seeds, band = min..max).
fig3: pass@k curves (k = 1, 2, 4, ..., n) per test set and inference kind, one line per training method.
fig4: mean CoT entropy by position (sampled inference), one line per training method.
fig5: ablation curves (validation greedy pass@1 over training) for the noise scale and the CoT temperature.
`--style '{"dpi": 150, "width": 4.0, "height": 3.0, "font_size": 9}'` sets the look only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def _band(runs: list[list[tuple[int, float]]]):
    steps = sorted(set.intersection(*(set(s for s, _ in r) for r in runs))) if runs else []
    table = [dict(r) for r in runs]
    mean = [sum(t[s] for t in table) / len(table) for s in steps]
    lo = [min(t[s] for t in table) for s in steps]
    hi = [max(t[s] for t in table) for s in steps]
    return steps, mean, lo, hi


def fig_training(plt, style, train: dict, variants: list[str], title_suffix: str = ""):
    fig, axes = plt.subplots(1, 2, figsize=(2 * style["width"], style["height"]))
    for v in variants:
        runs = train.get(v, [])
        if not runs:
            continue
        rew = [list(zip([m["step"] for m in r["metrics"]], _smooth([m["reward_mean"] for m in r["metrics"]],
                                                                     style["smooth"]))) for r in runs]
        s, m, lo, hi = _band(rew)
        ls = _variant_linestyle(v)
        axes[0].plot(s, m, label=f"{v} ({len(runs)} seeds)", color=_color(v), linestyle=ls)
        axes[0].fill_between(s, lo, hi, alpha=0.2, color=_color(v))
        val = [[(x["step"], 100 * x["greedy_pass1"]) for x in r["val"]] for r in runs if r["val"]]
        if val:
            s, m, lo, hi = _band(val)
            axes[1].plot(s, m, marker="o", ms=3, label=v, color=_color(v), linestyle=ls)
            axes[1].fill_between(s, lo, hi, alpha=0.2, color=_color(v))
    axes[0].set(xlabel="step", ylabel="mean training reward (smoothed)", title="training reward" + title_suffix)
    axes[1].set(xlabel="step", ylabel="greedy pass@1 (%)", title="greedy validation" + title_suffix)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def fig3(plt, style, ev: dict, test_sets: list[str]):
    kinds = ["hard", "fuzzy", "soft"]
    fig, axes = plt.subplots(len(kinds), len(test_sets), squeeze=False,
                             figsize=(style["width"] * len(test_sets), style["height"] * len(kinds)))
    for i, kind in enumerate(kinds):
        for j, d in enumerate(test_sets):
            ax = axes[i][j]
            for method in methods_present(ev):
                runs = ev.get((method, d, f"{kind}_sample"), [])
                if not runs:
                    continue
                ks = sorted(int(k) for k in runs[0]["pass_at_k"])
                ys = [100 * sum(r["pass_at_k"][str(k)] for r in runs) / len(runs) for k in ks]
                ax.plot(ks, ys, marker="o", ms=3, label=f"train {method}", **_method_line(method))
            ax.set_xscale("log", base=2)
            ax.set(xlabel="k", ylabel="pass@k (%)", title=f"{d}: {kind} inference")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def fig4(plt, style, ev: dict, test_sets: list[str]):
    kinds = ["hard", "fuzzy", "soft"]
    d = test_sets[0]
    fig, axes = plt.subplots(1, len(kinds), squeeze=False, figsize=(style["width"] * len(kinds), style["height"]))
    for j, kind in enumerate(kinds):
        ax = axes[0][j]
        for method in methods_present(ev):
            runs = [r for r in ev.get((method, d, f"{kind}_sample"), []) if r.get("entropy_by_position")]
            if not runs:
                continue
            n = min(len(r["entropy_by_position"]) for r in runs)
            ys = [sum((r["entropy_by_position"][t] or 0.0) for r in runs) / len(runs) for t in range(n)]
            ax.plot(range(n), ys, label=f"train {method}", **_method_line(method))
        ax.set(xlabel="CoT position", ylabel="entropy (nats)", title=f"{d}: {kind} sampling")
    axes[0][0].legend(fontsize="small")
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
