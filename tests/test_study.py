"""softcot.study on a synthetic results tree: the gain-vs-null table (values, standard error, verdict, best
steps), the scale table and figure (points ordered by parameters, gaps to hard, SNR and gradient ratio), the
positions table and figure, the numeric CSVs, and the errors that name a missing input."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from softcot import study


def _summary(root: Path, model: str, pass1: float, dataset: str = "test") -> str:
    p = root / "eval" / model / dataset / "summary.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"settings": {"hard_greedy": {"pass1": pass1, "pass_at_k": {"1": pass1}}}}))
    return str(p)


def _run(root: Path, model: str, best_step: int) -> str:
    variant, seed = model.split("_seed")
    d = root / "train" / variant / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({"best_step": best_step}))
    return str(d)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def gains_tree(tmp_path):
    pass1 = {"base": 0.40, "soft_seed0": 0.50, "soft_seed1": 0.46, "soft_seed2": 0.48,
             "soft-null_seed0": 0.41, "soft-null_seed1": 0.39, "soft-null_seed2": 0.40,
             "fuzzy-leverlong_seed0": 0.40, "fuzzy-leverlong_seed1": 0.42,
             "fuzzy-leverlongnull_seed0": 0.38, "fuzzy-leverlongnull_seed1": 0.44,
             "hard_seed0": 0.55}
    inputs = [_summary(tmp_path, m, v) for m, v in pass1.items()]
    inputs += [_summary(tmp_path, "base", 0.1, "test_hard")]               # another test set: not read
    inputs += [_run(tmp_path, m, s) for m, s in (("soft_seed0", 20), ("soft_seed1", 0), ("soft_seed2", 40),
                                                 ("fuzzy-leverlong_seed0", 0), ("fuzzy-leverlong_seed1", 0))]
    return inputs


def test_gains_table_against_hand_computed_values(gains_tree, tmp_path):
    out = tmp_path / "gains"
    assert study.main(["gains", "--inputs", *gains_tree, "--compare", "soft=soft-null",
                       "fuzzy-leverlong=fuzzy-leverlongnull", "hard", "--test-set", "test", "--out", str(out)]) == 0
    md = (tmp_path / "gains.md").read_text()
    rows = {(r["setup"], r["mode"], r["metric"]): r for r in _rows((tmp_path / "gains.csv").read_text())}
    # soft: gains +10, +6, +8 (mean 8, sd 2); null +1, -1, 0 (mean 0, sd 1); difference 8 ± sqrt(4/3 + 1/3)
    g = rows[("default", "soft", "G1 gain vs base")]
    assert float(g["mean"]) == pytest.approx(8.0) and float(g["std"]) == pytest.approx(2.0) and g["n"] == "3"
    assert [float(g[f"seed{s}"]) for s in range(3)] == pytest.approx([10.0, 6.0, 8.0])
    n = rows[("default", "soft", "null G1 gain vs base")]
    assert float(n["mean"]) == pytest.approx(0.0, abs=1e-9) and float(n["std"]) == pytest.approx(1.0)
    d = rows[("default", "soft", "gain minus null gain")]
    assert float(d["mean"]) == pytest.approx(8.0) and float(d["std"]) == pytest.approx(math.sqrt(5 / 3))
    assert [float(rows[("default", "soft", "best step")][f"seed{s}"]) for s in range(3)] == [20, 0, 40]
    assert rows[("default", "soft", "G1")]["null control"] == "soft-null"
    # the lever: gains 0, +2 vs null -2, +4: within the null's spread
    d = rows[("long", "fuzzy", "gain minus null gain")]
    assert float(d["mean"]) == pytest.approx(0.0, abs=1e-9)
    lines = {l.split("|")[1].strip() + "/" + l.split("|")[2].strip(): l for l in md.splitlines() if l.startswith("| ")}
    assert "above null (> 2 se)" in lines["default/soft"] and "20, 0, 40" in lines["default/soft"]
    assert "within null" in lines["long/fuzzy"] and "0, 0" in lines["long/fuzzy"]
    # one seed, no null control: the gain alone
    assert "+15.0" in lines["default/hard"] and ("default", "hard", "gain minus null gain") not in rows
    assert "- |" in lines["default/hard"]


def test_gains_errors_name_the_missing_input(gains_tree, tmp_path):
    no_base = [p for p in gains_tree if "/eval/base/" not in p]
    with pytest.raises(ValueError, match="no evaluation of 'base'.*eval/base/<test set>/summary.json"):
        study.main(["gains", "--inputs", *no_base, "--compare", "soft", "--out", str(tmp_path / "g")])
    with pytest.raises(ValueError, match="variant name 'soft-nul' not understood"):
        study.main(["gains", "--inputs", *gains_tree, "--compare", "soft=soft-nul", "--out", str(tmp_path / "g")])


def _diag(root: Path, base: str, n_params: int, d: int, snr: dict, ratio: dict) -> str:
    p = root / "study" / "diagnose" / f"{base}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    modes = {k: {"total": {"snr_unbiased": v}, "null": {"snr_unbiased": v / 10}, "cot": {"grad_norm": ratio[k]},
                 "answer": {"grad_norm": 1.0}} for k, v in snr.items()}
    p.write_text(json.dumps({"model_size": {"n_params": n_params, "hidden_size": d}, "modes": modes}))
    return str(p)


@pytest.fixture
def scale_tree(tmp_path):
    snr = {"hard": 0.2, "soft": 0.01, "fuzzy": 0.001}
    inputs = [_diag(tmp_path, "base-scaled384", 5_800_000, 384, snr, {"hard": 2.0, "soft": 20.0, "fuzzy": 50.0}),
              _diag(tmp_path, "base", 370_000, 96, snr, {"hard": 5.0, "soft": 100.0, "fuzzy": 400.0}),
              _diag(tmp_path, "base-scaled192", 1_400_000, 192, snr, {"hard": 3.0, "soft": 50.0, "fuzzy": 200.0})]
    pass1 = {"base": 0.40, "hard_seed0": 0.50, "soft_seed0": 0.40, "fuzzy_seed0": 0.30,
             "soft-null_seed0": 0.9, "soft-leverlong_seed0": 0.9,            # other setups on base: not scale points
             "base-scaled192": 0.60, "hard-scaled192_seed0": 0.70, "hard-scaled192_seed1": 0.72,
             "soft-scaled192_seed0": 0.65, "soft-scaled192_seed1": 0.69, "fuzzy-scaled192_seed0": 0.60,
             "base-scaled384": 0.80, "hard-scaled384_seed0": 0.85, "soft-scaled384_seed0": 0.84,
             "fuzzy-scaled384_seed0": 0.83}
    return inputs + [_summary(tmp_path, m, v) for m, v in pass1.items()]


def test_scale_table_orders_bases_by_parameters_and_measures_the_gap_to_hard(scale_tree, tmp_path):
    out = tmp_path / "scale"
    assert study.main(["scale", "--inputs", *scale_tree, "--test-set", "test", "--out", str(out)]) == 0
    rows = {(r["base"], r["mode"], r["metric"]): r for r in _rows((tmp_path / "scale.csv").read_text())}
    assert [r["base"] for r in _rows((tmp_path / "scale.csv").read_text()) if r["metric"] == "params"
            and r["mode"] == "hard"] == ["base", "base-scaled192", "base-scaled384"]
    val = lambda b, m, k: float(rows[(b, m, k)]["mean"])  # noqa: E731
    assert val("base", "soft", "G1 gain vs base") == pytest.approx(0.0, abs=1e-9)
    assert val("base", "fuzzy", "gain minus hard gain") == pytest.approx(-20.0)
    assert val("base-scaled192", "hard", "G1 gain vs base") == pytest.approx(11.0)        # +10, +12
    assert val("base-scaled192", "soft", "gain minus hard gain") == pytest.approx(-4.0)   # 7 - 11
    assert float(rows[("base-scaled192", "soft", "gain minus hard gain")]["std"]) == pytest.approx(
        math.sqrt(8 / 2 + 2 / 2))
    assert val("base-scaled384", "fuzzy", "gain minus hard gain") == pytest.approx(-2.0)
    assert val("base-scaled384", "fuzzy", "CoT/answer gradient ratio") == pytest.approx(50.0)
    assert val("base", "soft", "unbiased snr null") == pytest.approx(0.001)
    assert val("base-scaled192", "hard", "params") == 1_400_000 and val("base", "hard", "base G1") == 40.0
    assert ("base", "hard", "gain minus hard gain") not in rows
    assert "| base-scaled384 | fuzzy |" in (tmp_path / "scale.md").read_text()
    study.main(["scale-figure", "--inputs", *scale_tree, "--out", str(out), "--style", '{"dpi": 40}'])
    assert (tmp_path / "scale.png").stat().st_size > 1000 and (tmp_path / "scale.pdf").stat().st_size > 1000


def test_scale_refuses_a_diagnostic_not_named_after_a_base(scale_tree, tmp_path):
    bad = Path(scale_tree[0]).with_name("soft_seed0.json")
    bad.write_text(Path(scale_tree[0]).read_text())
    with pytest.raises(ValueError, match="named after its base model"):
        study.load_scale(scale_tree + [str(bad)], "test")


def test_positions_table_and_figure(tmp_path):
    labels = ["0", "1", "2-3", "4+", "marker"]
    def mode(shares):
        return {"positions": {"batches": 2, "labels": labels, "buckets": {
            k: {"grad_norm": 10.0 * (i + 1), "share": s, "vs_answer": 2.0 * (i + 1), "slots": 8.0,
                "steps_fraction": 0.2, "snr_unbiased": 0.01, "grad_norm_max": 1.0} for i, (k, s) in enumerate(zip(labels, shares))},
            "cot": {"grad_norm": 30.0, "vs_answer": 6.0, "snr_unbiased": 0.02}, "answer": {"grad_norm": 5.0}}}
    p = tmp_path / "positions.json"
    p.write_text(json.dumps({"config": {"prompts": 4, "group": 8},
                             "modes": {"hard": mode([0.1, 0.1, 0.2, 0.5, 0.1]),
                                       "fuzzy": mode([0.7, 0.1, 0.1, 0.0, 0.1])}}, sort_keys=True))
    assert study.main(["positions", "--inputs", str(p), "--out", str(tmp_path / "pos"), "--style", '{"dpi": 40}']) == 0
    rows = _rows((tmp_path / "pos.csv").read_text())
    share = {(r["mode"], r["CoT steps"]): float(r["mean"]) for r in rows if r["metric"] == "share of |g_CoT|^2"}
    assert share[("fuzzy", "0")] == 0.7 and share[("hard", "all")] == 1.0
    assert len([r for r in rows if r["metric"] == "|g|"]) == 2 * (len(labels) + 1)
    md = [l.split("|")[1:3] for l in (tmp_path / "pos.md").read_text().splitlines() if l.startswith("| ")]
    assert [(m.strip(), b.strip()) for m, b in md[1:]] == [(m, b) for m in ("hard", "fuzzy")     # CoT order,
                                                           for b in labels + ["all"]]           # not the file's
    assert (tmp_path / "pos.png").stat().st_size > 1000 and (tmp_path / "pos.pdf").exists()
