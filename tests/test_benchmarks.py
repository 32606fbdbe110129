"""softcot.benchmarks: real files in ../shared/data, hub-layout fixtures, bad rows, the offline error,
multiple-choice records for the OOD checks, and `softcot prepare-data` (its exit code on bad data is in
tests/test_cli.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from softcot import data as data_mod
from softcot.benchmarks import (BENCHMARKS, Records, last_boxed, load_benchmark, load_choice_records, main,
                                olympiad_keep)
from softcot.io import DataError, read_jsonl, write_jsonl
from tests.helpers import FIXTURES, MC_RECORDS, SHARED_DATA

HUB = FIXTURES / "hub"
DATA = SHARED_DATA

real_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared benchmark data not found at {DATA}")


# ---------------------------------------------------------------------------------------------------
# Real files (each read once per module)

@pytest.fixture(scope="module")
def real():
    cache = {}

    def get(name, sub, split=None):
        key = (name, sub, split)
        if key not in cache:
            cache[key] = load_benchmark(name, str(DATA / sub), split=split)
        return cache[key]
    return get


@real_data
@pytest.mark.real
@pytest.mark.parametrize("name,sub,split,count", [
    ("gsm8k", "gsm8k", "train", 7473), ("gsm8k", "gsm8k", "test", 1319), ("math", "math", "test", 5000),
    ("math500", "math500", None, 500), ("olympiadbench", "olympiadbench", None, 675),
    ("arc", "arc_challenge", None, 1172), ("mmlu", "mmlu", None, 14042), ("hellaswag", "hellaswag", None, 10042),
])
def test_real_counts(real, name, sub, split, count):
    rows = real(name, sub, split)
    assert len(rows) == count
    assert len({r["id"] for r in rows}) == count
    assert all(r["source"] == name and r["question"] for r in rows)
    if BENCHMARKS[name].kind == "math":
        assert all(isinstance(r["answer"], str) and r["answer"] for r in rows)
    else:
        assert all(0 <= r["label"] < len(r["choices"]) for r in rows)


@real_data
@pytest.mark.real
def test_real_spot_values(real):
    gsm = real("gsm8k", "gsm8k", "test")
    assert gsm[0]["answer"] == "18" and gsm[0]["id"] == "gsm8k-test-0"
    assert "Janet" in gsm[0]["question"]
    m500 = real("math500", "math500", None)
    assert m500[0]["id"] == "test/precalculus/807.json"
    assert m500[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    ob = real("olympiadbench", "olympiadbench", None)
    assert ob[0]["id"] == "1606" and ob[0]["answer"] == "2"
    multi = [r for r in ob if r["is_multiple_answer"]]
    assert len(multi) == 94 and all(r["answer"] for r in multi)
    arc = {r["id"]: r for r in real("arc", "arc_challenge", None)}
    assert arc["Mercury_7175875"]["label"] == 2                        # answerKey "C"
    assert arc["NYSEDREGENTS_2008_8_34"]["label"] == 1                 # answerKey "2" of labels 1-4
    assert arc["NYSEDREGENTS_2008_8_11"]["choices"][arc["NYSEDREGENTS_2008_8_11"]["label"]] == "dead organisms"
    mmlu = real("mmlu", "mmlu", None)
    assert len({r["subject"] for r in mmlu}) == 57
    first = mmlu[0]  # abstract_algebra row 0: options 0, 4, 2, 6, answer B
    assert first["subject"] == "abstract_algebra" and first["choices"] == ["0", "4", "2", "6"] and first["label"] == 1
    hs = real("hellaswag", "hellaswag", None)
    assert hs[0]["question"].startswith("Roof shingle removal:") and hs[0]["label"] == 3


@real_data
@pytest.mark.real
def test_real_math_train_empty_answers():
    with pytest.raises(DataError) as e:
        load_benchmark("math", str(DATA / "math"))  # split train by default
    assert "train.jsonl" in str(e.value) and "row 7037" in str(e.value) and "'answer'" in str(e.value)
    rows = load_benchmark("math", str(DATA / "math"), on_bad_row="skip")
    assert len(rows) == 7498
    assert [(Path(f).name, n) for f, n, _ in rows.skipped] == [("train.jsonl", 7037), ("train.jsonl", 7437)]
    assert load_benchmark("math", str(DATA / "math" / "train.jsonl"), limit=5, on_bad_row="skip")[4]["answer"]


# ---------------------------------------------------------------------------------------------------
# Hub-layout fixtures

def test_hub_gsm8k():
    rows = load_benchmark("gsm8k", str(HUB / "gsm8k"), split="test")
    assert [r["answer"] for r in rows] == ["7", "13000", "-2"]
    assert [r["id"] for r in rows] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert len(load_benchmark("gsm8k", str(HUB / "gsm8k"), split="train")) == 1


def test_hub_math_boxed_from_solution():
    rows = load_benchmark("math", str(HUB / "math"))  # train files of every subject folder
    assert [r["answer"] for r in rows] == ["\\frac{3}{4}", "2", "\\left( 3, \\frac{\\pi}{2} \\right)"]
    assert [r["subject"] for r in rows] == ["Algebra", "Algebra", "Geometry"]
    assert rows[0]["level"] == "Level 1" and rows[0]["id"] == "math-train-0"
    assert [r["answer"] for r in load_benchmark("math", str(HUB / "math"), split="test")] == ["9"]


def test_last_boxed():
    assert last_boxed("a $\\boxed{1}$ b $\\boxed{\\frac{a}{b^{2}}}$") == "\\frac{a}{b^{2}}"
    assert last_boxed("so $\\boxed 5$.") == "5"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("no box") is None and last_boxed("\\boxed{unbalanced") is None and last_boxed("\\boxed{}") is None


def test_hub_math500_and_deepscaler():
    rows = load_benchmark("math500", str(HUB / "math500" / "test.jsonl"))
    assert [(r["id"], r["answer"], r["level"]) for r in rows] == [
        ("test/prealgebra/1.json", "4", 1), ("test/prealgebra/2.json", "\\frac{3}{4}", 2)]
    ds = load_benchmark("deepscaler", str(HUB / "deepscaler"))  # a JSON array file, like the hub's deepscaler.json
    assert [r["answer"] for r in ds] == ["3", "5", "\\frac{1}{2}"]
    assert [r["id"] for r in ds] == ["deepscaler-train-0", "deepscaler-train-1", "deepscaler-train-2"]


def test_hub_olympiadbench_filter():
    rows = load_benchmark("olympiadbench", str(HUB / "olympiadbench"))
    # dropped: 1608 <img>, 1609 multi-modal, 1610 Chinese, 1611 theorem proof, 1612 no final answer, 1613 physics
    assert [r["id"] for r in rows] == ["1606", "1607", "1614"]
    assert [r["answer"] for r in rows] == ["8", "2, -2", "6"]
    assert rows[2]["question"].startswith("Let $k$ be the number of divisors of 12.")
    assert rows[1]["is_multiple_answer"] is True
    assert not rows.skipped  # filtered rows are not malformed rows
    assert olympiad_keep({"question": "x?", "final_answer": ["1"]})
    assert not olympiad_keep({"question": "![fig](a.png) x?", "final_answer": ["1"]})
    assert len(load_benchmark("olympiadbench", str(HUB / "olympiadbench"), limit=2)) == 2


def test_hub_arc_numeric_and_five_choices():
    rows = load_benchmark("arc", str(HUB / "arc"))  # the ARC-Easy decoy folder is ignored
    assert [r["id"] for r in rows] == ["Mercury_1", "NYSEDREGENTS_2", "MCAS_3"]
    assert [r["label"] for r in rows] == [1, 3, 4]
    assert rows[1]["choices"][rows[1]["label"]] == "dead organisms" and len(rows[2]["choices"]) == 5


def test_hub_mmlu_parquet():
    rows = load_benchmark("mmlu", str(HUB / "mmlu"))
    assert [r["label"] for r in rows] == [1, 2, 3]
    assert [r["choices"][r["label"]] for r in rows] == ["4", "carbon dioxide", "Shakespeare"]
    assert rows[0]["subject"] == "elementary_mathematics"


def test_hub_hellaswag_string_labels_and_cleanup():
    rows = load_benchmark("hellaswag", str(HUB / "hellaswag"))
    assert [r["label"] for r in rows] == [3, 0]
    assert rows[0]["question"] == "Roof shingle removal: A man is sitting on a roof. he"  # as in ../shared/data
    assert rows[1]["question"] == "Home and Garden: How to clean a grill. Scrape the grates."
    assert rows[1]["choices"][0] == "Use a wire brush."


# ---------------------------------------------------------------------------------------------------
# Malformed rows

@pytest.mark.parametrize("name,file,row,column,n_ok,n_bad", [
    ("gsm8k", "gsm8k_test.jsonl", 2, "answer", 2, 1),
    ("math", "math_train.jsonl", 2, "solution", 2, 2),
    ("arc", "arc_test.jsonl", 2, "answerKey", 1, 1),
    ("mmlu", "college_physics_test.csv", 2, "answer", 1, 2),
])
def test_malformed_rows(name, file, row, column, n_ok, n_bad):
    path = HUB / "malformed" / file
    with pytest.raises(DataError) as e:
        load_benchmark(name, str(path))
    msg = str(e.value)
    assert file in msg and f"row {row}:" in msg and f"'{column}'" in msg and "fix:" in msg
    rows = load_benchmark(name, str(path), on_bad_row="skip")
    assert isinstance(rows, data_mod.Records) and len(rows) == n_ok and len(rows.skipped) == n_bad
    assert rows.skipped[0][:2] == (str(path), row)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("nope")
    with pytest.raises(ValueError, match="on_bad_row"):
        load_benchmark("gsm8k", str(HUB / "gsm8k"), on_bad_row="ignore")
    with pytest.raises(DataError, match="no such file or folder"):
        load_benchmark("gsm8k", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no file for split 'validation'"):
        load_benchmark("gsm8k", str(HUB / "gsm8k"), split="validation")


def test_offline_hub_error_names_the_fix(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    # The library reads HF_HUB_OFFLINE at import time, so set the env var and the imported flags both.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as e:
        load_benchmark("gsm8k", split="test")
    msg = str(e.value)
    assert "openai/gsm8k" in msg and "--path" in msg and "path:" in msg and "HF_HUB_OFFLINE" in msg


def test_hub_revision_reaches_load_dataset(monkeypatch, capsys, tmp_path):
    """`revision` (CLI --revision, config data.sets.<name>.revision) pins the hub download; every configuration
    of a multi-config benchmark is read at that revision."""
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake(hub_id, config, split, revision=None):
        calls.append((hub_id, config, split, revision))
        if hub_id == "openai/gsm8k":
            return [{"question": "1+1?", "answer": "one and one #### 2"}]
        return [{"problem": "1+1?", "solution": "\\boxed{2}", "answer": "2"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    rows = load_benchmark("math", split="test", revision="0123abc")
    assert len(rows) == len(BENCHMARKS["math"].hub_configs)
    assert {c[3] for c in calls} == {"0123abc"} and {c[0] for c in calls} == {"EleutherAI/hendrycks_math"}
    calls.clear()
    assert main(["--benchmark", "gsm8k", "--revision", "v1", "--out", str(tmp_path / "g.jsonl")]) == 0
    assert calls == [("openai/gsm8k", "main", "test", "v1")] and "hub openai/gsm8k" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# Offline generators

@pytest.mark.real
def test_gsm_symbolic():
    pytest.importorskip("reasoning_gym", reason="reasoning_gym not installed (pip install 'softcot[real]')")
    rows = load_benchmark("gsm_symbolic", limit=20, seed=3)
    assert len(rows) == 20 and all(r["answer"] and "," not in r["answer"] for r in rows)
    assert len({r["id"] for r in rows}) == 20
    assert rows == load_benchmark("gsm_symbolic", limit=20, seed=3)  # seeded: deterministic


@pytest.mark.real
def test_champ():
    if importlib.util.find_spec("champ_dataset") is None:
        pytest.skip("champ_dataset not installed (pip install 'softcot[real]')")
    rows = load_benchmark("champ")
    assert len(rows) == 270 and all(r["answer"].strip() and r["question"] for r in rows)
    assert len({r["id"] for r in rows}) == 270


# ---------------------------------------------------------------------------------------------------
# CLI

def test_cli_writes_jsonl(tmp_path, capsys):
    out = tmp_path / "olympiad.jsonl"
    assert main(["--benchmark", "olympiadbench", "--path", str(HUB / "olympiadbench"), "--out", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["1606", "1607", "1614"]
    assert "3 rows" in capsys.readouterr().out

    out = tmp_path / "gsm.jsonl"
    bad = str(HUB / "malformed" / "gsm8k_test.jsonl")
    with pytest.raises(DataError, match=r"gsm8k_test\.jsonl, row 2:"):
        main(["--benchmark", "gsm8k", "--path", bad, "--out", str(out)])
    assert not out.exists()
    assert main(["--benchmark", "gsm8k", "--path", bad, "--on-bad-row", "skip", "--limit", "1", "--out", str(out)]) == 0
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == ["2"]
    printed = capsys.readouterr().out
    assert "1 rows" in printed and "skipped 0" in printed


# ---------------------------------------------------------------------------------------------------
# Multiple-choice records (softcot ood)

def test_records_are_the_data_modules():
    assert Records is data_mod.Records


def test_load_choice_records_from_a_normalised_file(tmp_path):
    f = tmp_path / "mc.jsonl"
    write_jsonl(f, MC_RECORDS)
    assert load_choice_records("toy", f, limit=2) == MC_RECORDS[:2]
    write_jsonl(f, [{k: v for k, v in r.items() if k not in ("id", "source")} for r in MC_RECORDS])
    rows = load_choice_records("toy", f)
    assert [r["id"] for r in rows] == ["0", "1", "2", "3"] and {r["source"] for r in rows} == {"toy"}


def test_load_choice_records_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [MC_RECORDS[0], {**MC_RECORDS[1], "label": 7}])
    with pytest.raises(DataError, match=r"bad\.jsonl, row 2: need a question"):
        load_choice_records("toy", bad)
    plain = tmp_path / "plain.jsonl"
    write_jsonl(plain, [{"question": "q", "answer": "1"}])
    with pytest.raises(DataError, match="not a known multiple-choice benchmark"):
        load_choice_records("gsm8k", plain)
    with pytest.raises(DataError, match=r"arc: .*missing\.jsonl does not exist"):
        load_choice_records("arc", tmp_path / "missing.jsonl")


def test_load_choice_records_reads_raw_benchmark_files():
    rows = load_choice_records("arc_challenge", HUB / "arc" / "ARC-Challenge" / "test.jsonl", limit=2)
    assert [r["id"] for r in rows] == ["Mercury_1", "NYSEDREGENTS_2"] and [r["label"] for r in rows] == [1, 3]
    assert load_choice_records("mmlu", HUB / "mmlu")[0]["choices"][1] == "4"


@real_data
@pytest.mark.real
def test_load_choice_records_reads_the_real_arc_file():
    rows = load_choice_records("arc_challenge", DATA / "arc_challenge" / "ARC-Challenge-Test.jsonl", limit=3)
    assert len(rows) == 3 and rows[0]["source"] == "arc" and isinstance(rows[0]["label"], int)
