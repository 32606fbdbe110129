"""softcot.figures on a synthetic results tree: every panel has a legend, Figure 3 plots the pass@k gain over the
base with seed error bars, Figure 4 shades the positions few rollouts reach, Figure 2 draws the base."""
from __future__ import annotations

import pytest

from softcot import figures
from softcot.results import load_eval, load_training
from tests.synthetic_results import eval_paths, make_tree, train_dirs

STYLE = figures.DEFAULT_STYLE


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("results") / "toy", passn={"soft": 75.0})


@pytest.fixture(scope="module")
def plt():
    return figures._plt(STYLE)


def _legends_everywhere(fig):
    for ax in fig.axes:
        assert ax.get_legend() is not None, ax.get_title()


def test_fig3_plots_gains_with_seed_error_bars(res, plt):
    fig = figures.fig3(plt, STYLE, load_eval(eval_paths(res)), ["test", "test_hard"])
    assert len(fig.axes) == 6
    _legends_everywhere(fig)
    ax = fig.axes[0]                                         # test, hard inference
    assert ax.get_title().startswith("test: hard inference")
    soft = next(c for c in ax.containers if c.get_label() == "train soft")
    ys = soft.lines[0].get_ydata()
    assert ys[-1] == pytest.approx(75.0 - 60.0)              # pass@8 gain: method mean - base
    gains = figures.passk_gains(load_eval(eval_paths(res)), "test", "hard")
    assert set(gains) == {"hard", "fuzzy", "soft"}
    ks, _, sd = gains["soft"]
    assert ks[-1] == 8 and sd[-1] == pytest.approx(1.0)      # the seed std of the synthetic runs
    plt.close(fig)


def test_fig4_shades_positions_few_rollouts_reach(res, plt):
    fig = figures.fig4(plt, STYLE, load_eval(eval_paths(res)), ["test"])
    _legends_everywhere(fig)
    for ax in fig.axes:
        spans = [p for p in ax.patches if "rollouts reach" in p.get_label()]
        assert len(spans) == 1
        x0 = spans[0].get_x()
        assert x0 == pytest.approx(8 - 0.5)                  # synthetic counts drop from 100 to 2 at position 8
    ent, cnt = figures.entropy_profile(load_eval(eval_paths(res))[("hard", "test", "hard_sample")])
    assert cnt[0] == 300 and cnt[-1] == 6 and ent[1] == pytest.approx(0.15)
    plt.close(fig)


def test_fig2_draws_the_base_and_a_legend_on_each_panel(res, plt):
    train = load_training(train_dirs(res))
    fig = figures.fig_training(plt, STYLE, train, ["hard", "fuzzy", "soft"])
    _legends_everywhere(fig)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "base (hard/fuzzy/soft greedy)" in labels          # one value at step 0 for every mode: one line
    base = next(ln for ln in fig.axes[1].lines if ln.get_label().startswith("base ("))
    assert base.get_ydata()[0] == pytest.approx(40.0)        # the step-0 validation of the synthetic runs
    for r in train["soft"]:                                   # soft validates in its own decoding: its own line
        r["val"][0]["greedy_pass1"] = 0.3
    fig2 = figures.fig_training(plt, STYLE, train, ["hard", "fuzzy", "soft"])
    labels = [t.get_text() for t in fig2.axes[1].get_legend().get_texts()]
    assert "base (hard/fuzzy greedy)" in labels and "base (soft greedy)" in labels
    plt.close(fig2)
    plt.close(fig)


@pytest.mark.parametrize("which", ["fig2", "fig3", "fig4", "study"])
def test_build_writes_png_and_pdf(res, tmp_path, which):
    inputs = train_dirs(res) if which in ("fig2", "study") else eval_paths(res)
    figures.build(which, inputs, str(tmp_path / which), ["test", "test_hard"], {})
    assert (tmp_path / f"{which}.png").stat().st_size > 0 and (tmp_path / f"{which}.pdf").exists()
