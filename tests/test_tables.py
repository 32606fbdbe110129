"""softcot.tables: numeric CSVs (mean, std, n, per-seed values), Markdown and HTML rendered from the same numbers,
the paper's rows beside ours, and the verdict column, on a synthetic results tree."""
from __future__ import annotations

import json
import math

import pytest

from softcot import tables
from tests.synthetic_results import eval_paths, make_tree, ood_paths


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("results") / "toy", g1={"hard": 50.0})


def _rows(csv_text, tmp_path, name="t.csv"):
    p = tmp_path / name
    p.write_text(csv_text)
    return tables.read_csv(p)


def test_table1_csv_is_numeric_with_per_seed_values(res, tmp_path):
    md, cs, _ = tables.build("table1", eval_paths(res), ["test", "test_hard"])
    assert "±" not in cs
    rows = _rows(cs, tmp_path)
    head = cs.splitlines()[0].split(",")
    assert head == ["section", "dataset", "method", "metric", "unit", "mean", "std", "n", "seed0", "seed1", "seed2"]
    hard = next(r for r in rows if (r["method"], r["dataset"], r["metric"]) == ("hard", "test", "G1"))
    assert hard["mean"] == pytest.approx(50.0) and hard["std"] == pytest.approx(1.0) and hard["n"] == 3
    assert hard["values"] == pytest.approx({0: 49.0, 1: 51.0, 2: 50.0})
    base = next(r for r in rows if (r["method"], r["dataset"], r["metric"]) == ("no finetune", "test", "G1"))
    assert base["mean"] == pytest.approx(40.0) and math.isnan(base["std"]) and base["n"] == 1 and base["values"] == {}
    gain = next(r for r in rows if r["method"] == "hard" and r["metric"] == "G1 gain vs base")
    assert gain["values"] == pytest.approx({0: 9.0, 1: 11.0, 2: 10.0}) and gain["unit"] == "points"
    # the Markdown shows the same numbers
    line = next(ln for ln in md.splitlines() if ln.startswith("| hard |"))
    assert "50.0 ± 1.0" in line and "+10.0 ± 1.0" in line and "improved (> 2 sd)" in line
    assert "| no finetune | 40.0 |" in md
    assert {r["metric"] for r in rows if r["dataset"] == "test"} == {"G1", "S1", "S8", "G1 gain vs base"}


def test_verdict_rule():
    c = tables.Cell
    assert tables.verdict(c([3.0, 3.2, 2.8], [0, 1, 2])) == "improved (> 2 sd)"
    assert tables.verdict(c([3.0, -1.0, 5.0], [0, 1, 2])) == "no improvement at this scale"
    assert tables.verdict(c([-3.0, -3.1, -2.9], [0, 1, 2])) == "no improvement at this scale"
    assert tables.verdict(c([3.0], [0])) == "one seed: no spread"
    assert tables.verdict(c([], [])) == "-"


def test_table3_5_sections_per_test_set_and_units(res, tmp_path):
    md, cs, ht = tables.build("table3_5", eval_paths(res), ["test", "test_hard"])
    rows = _rows(cs, tmp_path)
    assert {r["section"] for r in rows} == {"table3", "table4"}
    assert {r["metric"] for r in rows} == {"HG", "HS", "HS8", "FG", "FS", "FS8", "SG", "SS", "SS8"}
    assert "### Table 3 - test:" in md and "### Table 4 - test_hard:" in md
    soft_sg = next(r for r in rows if (r["section"], r["method"], r["metric"]) == ("table3", "soft", "SG"))
    assert soft_sg["mean"] == pytest.approx(42.5)
    assert ht.count("<table>") == 2 and "42.5 ± 1.0" in ht


def test_table2_units_and_digits(res, tmp_path):
    md, cs, _ = tables.build("table2", ood_paths(res), ["test"])
    rows = _rows(cs, tmp_path)
    nll = next(r for r in rows if r["method"] == "hard" and r["metric"] == "NLL")
    assert nll["unit"] == "nats/token" and nll["mean"] == pytest.approx(0.80)
    assert "0.800 ± 0.010" in md
    acc = next(r for r in rows if r["method"] == "no finetune" and r["metric"] == "Acc")
    assert acc["unit"] == "%" and acc["mean"] == pytest.approx(60.0)


def test_paper_rows_in_markdown_and_html_not_in_csv(res, tmp_path):
    md, cs, ht = tables.build("table1", eval_paths(res), ["test"], preset="llama3b_gsm8k")
    assert "Paper, Table 1 (arXiv 2509.19170)" in md and "Llama3.2-3B-Inst / gsm8k soft" in md
    assert "77.2±0.9" in ht
    assert "Llama" not in cs and "paper" not in cs
    md3, _, _ = tables.build("table3_5", eval_paths(res), ["test", "test_hard"], preset="llama3b_gsm8k")
    assert "Paper, Table 3" in md3 and "Paper, Table 5" in md3


def test_study_tables_with_diagnostics(res, tmp_path):
    snr = tmp_path / "snr.json"
    term = {"snr": 0.05, "snr_unbiased": 0.001, "cos": 0.01, "grad_norm": 123.0}
    snr.write_text(json.dumps({"modes": {m: {"total": term, "null": term, "cot": term, "answer": term,
                                              "reward_mean": 30.0,
                                              "diversity": {"both": {"pass1": 0.2, "pass@8": 0.5,
                                                                     "distinct_answers": 3.0, "distinct_cots": 7.5}}}
                                          for m in ("hard", "soft")}}))
    md, cs, _ = tables.build("study", eval_paths(res) + [str(snr)], ["test"])
    rows = _rows(cs, tmp_path)
    assert {r["section"] for r in rows} == {"study", "snr", "diversity"}
    div = next(r for r in rows if r["section"] == "diversity" and r["metric"] == "pass@n" and r["mode"] == "soft")
    assert div["condition"] == "both" and div["mean"] == pytest.approx(50.0)
    assert "| soft | both | 20.0 | 50.0 | 3.00 | 7.50 |" in md
    assert "Gradient signal-to-noise" in md and "0.0500" in md


def test_cli_writes_md_csv_and_html(res, tmp_path):
    out = tmp_path / "tables" / "table1"
    assert tables.main(["table1", "--inputs", *eval_paths(res), "--test-sets", "test", "--out", str(out)]) == 0
    for ext in ("md", "csv", "html"):
        assert (tmp_path / "tables" / f"table1.{ext}").stat().st_size > 0
