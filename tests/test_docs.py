"""softcot.docs and softcot.findings on synthetic result trees: the findings' verdicts follow their rules, every
number in the document comes from the files, the paper's rows sit beside ours for a preset, and extra tables and
figures (study/, estimators/) get a section each."""
from __future__ import annotations

import json

import pytest

from softcot import digest, docs, findings, tables
from softcot.io import DataError
from tests.synthetic_results import eval_paths, make_tree, ood_paths

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16         # the document only copies figures: any bytes will do


def _tables(res, test_sets, preset=None):
    extra = ["--preset", preset] if preset else []
    for which, inputs in (("table1", eval_paths(res)), ("table3_5", eval_paths(res)), ("table2", ood_paths(res))):
        assert tables.main([which, "--inputs", *inputs, "--test-sets", *test_sets, *extra,
                            "--out", str(res / "tables" / which)]) == 0
    (res / "figures").mkdir(exist_ok=True)
    for f in ("fig2", "fig3", "fig4"):
        (res / "figures" / f"{f}.png").write_bytes(PNG)
    return res


def _verdicts(text: str) -> dict[str, str]:
    return {k: next(ln for ln in text.splitlines() if ln.startswith(f"### {k}: ")).split(": ", 1)[1]
            for k in ("F1", "F2", "F3", "F4")}


def test_default_tree_findings_numbers_and_figures(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "toy"), ["test", "test_hard"])
    out = tmp_path / "docs" / "results.md"
    text = docs.build(res, out, ["test", "test_hard"])
    assert out.read_text() == text
    assert _verdicts(text) == {"F1": "held", "F2": "not held", "F3": "held", "F4": "held"}
    # numbers from the tables and base_eval.json
    assert "greedy pass@1 under hard inference (%) moves from the base's 40.0 to: hard training to 45.0 ± 1.0" in text
    assert "| test | 40.0 | 30.0 | 64 |" in text                        # base_eval.json
    assert "| test | soft - hard, HS8 | soft 70.0 ± 1.0 | hard 70.0 ± 1.0 | +0.0 | 2.0 | level | no |" in text
    # every default figure is copied beside the document and shown
    for f in ("fig2", "fig3", "fig4"):
        assert (tmp_path / "docs" / "figures" / f"{f}.png").read_bytes() == PNG
        assert f"](figures/{f}.png)" in text
    assert "hard 40.0 ± 1.0 at step 0 -> 45.0 ± 1.0 at step 20" in text    # fig2 caption, from val.jsonl
    assert "reach position 8" in text                                    # fig4 caption, from the counts
    assert "#### Table 1 - hard inference" in text and "#### Table 2 - out of domain" in text


def test_each_rule_decides_its_finding(tmp_path):
    res = make_tree(tmp_path / "a", passn={"soft": 75.0, "fuzzy": 76.0}, g1={"soft": 55.0},
                    nll={"soft": 0.85}, infer={("fuzzy", "soft"): 60.0})
    _tables(res, ["test"])
    f = {x.key: x for x in findings.judge(tables.read_csv(res / "tables/table3_5.csv"),
                                          tables.read_csv(res / "tables/table2.csv"), ["test"])}
    assert f["F2"].verdict == "held"                   # +5 and +6 points against a tolerance of 2
    assert f["F1"].verdict == "not held"               # soft 55 against hard 45
    assert f["F3"].verdict == "not held"               # soft moves the NLL by 0.15, hard by 0.10
    assert f["F4"].verdict == "not held"               # fuzzy-trained: soft greedy 60 against hard greedy 44.5
    bad = [c for c in f["F4"].comparisons if not c.ok]
    assert [(c.where, c.what) for c in bad] == [("test", "train fuzzy: SG - HG")]


def test_pooled_std_and_one_seed():
    a, b = findings.Stat(10.0, 1.0, 3), findings.Stat(12.0, 3.0, 3)
    assert findings.pooled_std(a, b) == pytest.approx((5.0) ** 0.5)
    assert findings.pooled_std(a, findings.Stat(9.0, float("nan"), 1)) == pytest.approx(1.0)
    assert str(findings.pooled_std(findings.Stat(1, float("nan"), 1), findings.Stat(2, float("nan"), 1))) == "nan"


def test_one_seed_leaves_findings_undetermined(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "one", seeds=(0,)), ["test"])
    text = docs.build(res, tmp_path / "d" / "results.md", ["test"])
    assert set(_verdicts(text).values()) == {"undetermined"}
    assert "no spread (one seed)" in text


def test_preset_shows_the_papers_rows_beside_ours(tmp_path):
    sets = ["gsm8k", "math500", "olympiadbench"]
    res = make_tree(tmp_path / "results" / "llama3b_gsm8k", test_sets=sets, ood_sets=("hellaswag", "arc", "mmlu"),
                    n=32, toy=False)
    _tables(res, sets, preset="llama3b_gsm8k")
    text = docs.build(res, tmp_path / "docs" / "results.md", sets, preset="llama3b_gsm8k")
    assert "## The paper beside ours (preset `llama3b_gsm8k`)" in text
    assert "| soft | paper (Llama3.2-3B-Inst) | 77.2±0.9 | 70.6±3.4 | 97.9±0.3 |" in text     # Table 1
    assert "| soft | ours | 45.5 ± 1.0 | 35.5 ± 1.0 | 70.0 ± 1.0 |" in text
    assert "### Table 3: ours and the paper's" in text and "### Table 5: ours and the paper's" in text
    assert "| hellaswag NLL |" in text and "| hard | ours |" in text                             # Table 2 by name
    assert "hub checkpoint" in text                                                          # no base_eval.json


def test_extra_tables_and_figures_get_a_section(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "toy"), ["test"])
    (res / "study").mkdir()
    (res / "study" / "study.md").write_text("### Study - each mode beside its null control\n\n| a |\n|---|\n| 1 |\n")
    (res / "study" / "study_curves.png").write_bytes(PNG)
    (res / "estimators" / "figures").mkdir(parents=True)
    _, cs, _ = tables.build("table1", eval_paths(res), ["test"])
    (res / "estimators" / "compare.csv").write_text(cs)
    (res / "estimators" / "figures" / "compare.png").write_bytes(PNG)      # nested folders are read too
    (res / "figures" / "fig5.png").write_bytes(PNG)
    copies = docs.figure_copies(res)
    assert copies[str(res / "study" / "study_curves.png")] == "study_study_curves.png"
    assert set(docs.extra_inputs(res)) >= {str(res / "study" / "study.md"), str(res / "estimators" / "compare.csv"),
                                           str(res / "figures" / "fig5.png")}
    text = docs.build(res, tmp_path / "docs" / "results.md", ["test"])
    assert "## Study (`study/`)" in text and "#### Study - each mode beside its null control" in text
    assert "## Estimators (`estimators/`)" in text and "### estimators/compare.csv" in text
    assert "| table1 | test | hard |" in text                       # the generic rendering of a numeric CSV
    for name in ("study_study_curves.png", "estimators_figures_compare.png", "fig5.png"):
        assert (tmp_path / "docs" / "figures" / name).exists() and f"(figures/{name})" in text
    assert "*Figure 5.* Ablations of the noise scale" in text


def test_cli_names_a_missing_results_folder(tmp_path):
    with pytest.raises(DataError, match="no tables here"):
        docs.main(["--results", str(tmp_path / "nope"), "--out", str(tmp_path / "r.md")])


def test_paper_blocks_are_not_repeated_under_the_tables(tmp_path):
    sets = ["gsm8k", "math500", "olympiadbench"]
    res = _tables(make_tree(tmp_path / "results" / "q", test_sets=sets, n=32, toy=False), sets, preset="qwen3b_math")
    assert "### Paper, Table 1" in (res / "tables" / "table1.md").read_text()
    text = docs.build(res, tmp_path / "docs" / "results.md", sets, preset="qwen3b_math")
    assert "Paper, Table" not in text and "| math | paper (Qwen2.5-3B-Inst) |" not in text
    assert "| soft | paper (Qwen2.5-3B-Inst) | 82.9±0.9 |" in text


def test_a_table_in_the_old_layout_names_the_fix(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "toy"), ["test"])
    (res / "tables" / "table3_5.csv").write_text("section,method,HG\ntest,hard,47.1±0.5\n")
    with pytest.raises(DataError, match="snakemake --cores all table3_5"):
        docs.build(res, tmp_path / "docs" / "results.md", ["test"])


def test_other_experiments_are_shown_with_their_table1_and_gain(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "toy"), ["test", "test_hard"])
    other = _tables(make_tree(tmp_path / "results" / "toy_seeds345"), ["test", "test_hard"])
    missing = tmp_path / "results" / "toy_data1"
    text = docs.build(res, tmp_path / "docs" / "results.md", ["test", "test_hard"],
                      others={str(other): "RL seeds 3-5", str(missing): "toy data seed 1"})
    section = text.split("## The same budget on other seeds and data", 1)[1]
    assert "### `toy_seeds345`: RL seeds 3-5" in section
    assert "moves from the base's 40.0 to: hard training to 45.0 ± 1.0" in section      # its own table1.csv
    assert "#### Table 1 - hard inference" in section
    assert "### `toy_data1`: toy data seed 1" in section and "table1.csv` is missing" in section


def test_readme_digest_is_rewritten_between_its_markers_from_the_tables(tmp_path):
    res = _tables(make_tree(tmp_path / "results" / "toy"), ["test", "test_hard"])
    other = _tables(make_tree(tmp_path / "results" / "toy_seeds345", g1={"hard": 48.0}), ["test", "test_hard"])
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{digest.BEGIN}\nold text\n{digest.END}\n\n## after\n")
    assert docs.main(["--results", str(res), "--out", str(tmp_path / "docs" / "results.md"), "--readme", str(readme),
                      "--also", f"{other}=RL seeds 3-5"]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n\nintro\n\n{digest.BEGIN}\n") and text.endswith(f"{digest.END}\n\n## after\n")
    assert "old text" not in text
    assert "| **F2** " in text and text.count("| held |") == 3 and text.count("| not held |") == 1
    assert "| hard | 45.0 ± 1.0 | +5.0 ± 1.0 | 3 | 70.0 ± 1.0 | 0.800 ± 0.010 |" in text
    assert "| no finetune | 40.0 |  | 1 | 60.0 | 0.700 |" in text
    assert "- `toy_seeds345`, RL seeds 3-5: hard training's gain +8.0 ± 1.0 points over 3 seeds" in text
    # the estimators' comparison, when its tables exist, is the one shown
    est = make_tree(tmp_path / "est", modes=("hard", "multiplex"), g1={"multiplex": 41.0})
    for which, inputs in (("table1", eval_paths(est)), ("table2", ood_paths(est))):
        assert tables.main([which, "--inputs", *inputs, "--test-sets", "test", "--out",
                            str(res / "estimators" / "tables" / which)]) == 0
    assert "| multiplex | 41.0 ± 1.0 | +1.0 ± 1.0 | 3 |" in digest.digest(res)
    # with the study's outputs: each method's null control and its gradient SNR on the base
    (res / "study").mkdir()
    (res / "study" / "gains.csv").write_text(
        "section,dataset,setup,mode,null control,metric,unit,mean,std,n,seed0,seed1,seed2\n"
        "gains,test,default,hard,hard-null,null G1 gain vs base,points,-1.5,0.5,3,-1,-2,-1.5\n"
        "gains,test,long,hard,hard-leverlongnull,null G1 gain vs base,points,9,0,3,9,9,9\n")
    (res / "study" / "snr.json").write_text(json.dumps({"modes": {"hard": {
        "total": {"snr_unbiased": 0.072}, "null": {"snr_unbiased": -0.006}}}}))
    text = digest.digest(res)
    assert "null control's gain (points) | gradient SNR on the base, unbiased (null control) |" in text
    assert "| +1.0 ± 1.0 | 3 |" in text and "| -1.5 ± 0.5 | 0.072 (-0.006) |" in text and "| - | - |" in text
    # a README without the markers is refused with the fix, and left as it was
    readme.write_text("# no markers\n")
    with pytest.raises(DataError, match="add them where the digest should go"):
        digest.update_readme(readme, "x")
    assert readme.read_text() == "# no markers\n"
