"""softcot.data: the one record loader (question-answer and multiple-choice files), its row-level errors,
and the trainer's deterministic prompt sampler."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from softcot.data import PromptSampler, Records, load_records
from softcot.io import DataError

QA = [{"id": "a", "question": "1+1", "answer": "2"}, {"id": "b", "question": "2+2", "answer": "4"},
      {"id": "c", "question": "3+3", "answer": "6"}]
CHOICE = [{"id": "x", "question": "2,4,?", "choices": ["6", "7"], "label": 0},
          {"id": "y", "question": "Sky?", "choices": ["blue", "red", "green"], "label": 2, "source": "arc"}]


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_qa_records_keep_their_columns_and_ids(tmp_path):
    rows = load_records(write(tmp_path / "qa.jsonl", [{**QA[0], "level": 3}, *QA[1:]]))
    assert isinstance(rows, Records) and rows.skipped == []
    assert rows == [{**QA[0], "level": 3}, *QA[1:]]


def test_records_without_an_id_get_their_0_based_row_number_as_a_string(tmp_path):
    f = write(tmp_path / "qa.jsonl", [{"question": "q0", "answer": "0"}, {"id": 7, "question": "q1", "answer": "1"},
                                      {"question": "q2", "answer": "2"}])
    assert [r["id"] for r in load_records(f)] == ["0", "7", "2"]


def test_choice_records_and_the_source_column(tmp_path):
    f = write(tmp_path / "mc.jsonl", CHOICE)
    rows = load_records(f, kind="choice", source="toy")
    assert [r["source"] for r in rows] == ["toy", "arc"]           # a missing source is filled, a given one kept
    assert [r["label"] for r in rows] == [0, 2]
    assert load_records(f, kind="choice")[0].get("source") is None
    with pytest.raises(DataError, match=r"mc.jsonl, row 1: missing or empty answer"):
        load_records(f)                                             # a choice file is not a qa file


@pytest.mark.parametrize("bad", [
    {"question": "q", "choices": ["a", "b"], "label": 2},          # label out of range
    {"question": "q", "choices": ["a", "b"], "label": -1},
    {"question": "q", "choices": ["a", "b"], "label": True},       # a bool is not a label
    {"question": "q", "choices": ["a", "b"], "label": "0"},
    {"question": "q", "choices": ["a"], "label": 0},                # fewer than two choices
    {"question": "q", "choices": "ab", "label": 0},
    {"question": "q", "choices": ["a", 1], "label": 0},
    {"choices": ["a", "b"], "label": 0},                             # no question
])
def test_malformed_choice_rows_name_file_and_row(tmp_path, bad):
    f = write(tmp_path / "mc.jsonl", [CHOICE[0], bad])
    with pytest.raises(DataError, match=r"mc\.jsonl, row 2: need a question, a list of 2\+ string choices"):
        load_records(f, kind="choice")


def test_malformed_rows_name_file_and_row(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n"
                 + "{not json\n")
    with pytest.raises(DataError, match=r"train.jsonl.*(row|line) [23]"):
        load_records(str(f))
    f.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl, row 2: missing or empty answer"):
        load_records(str(f))
    rows = load_records(str(f), on_bad_row="skip")
    assert len(rows) == 1 and rows.skipped == [(str(f), 2, "missing or empty answer")]


def test_not_json_names_the_line(tmp_path):
    f = write(tmp_path / "t.jsonl", [QA[0], "{not json"])
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: not valid JSON"):
        load_records(f, on_bad_row="skip")                 # not a skippable row: the file itself is broken
    f = write(tmp_path / "t.jsonl", [QA[0], "[1, 2]"])
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: expected a JSON object"):
        load_records(f)


def test_skip_lists_every_bad_row_with_file_row_and_reason(tmp_path):
    f = write(tmp_path / "qa.jsonl", [QA[0], {"question": " ", "answer": "1"}, QA[1], {"answer": ""}, QA[2]])
    rows = load_records(f, on_bad_row="skip")
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows.skipped == [(str(f), 2, "missing or empty question"), (str(f), 4, "missing or empty question, answer")]


def test_limit_returns_the_first_usable_records(tmp_path):
    f = write(tmp_path / "qa.jsonl", [QA[0], {"question": "no answer"}, QA[1], QA[2]])
    rows = load_records(f, on_bad_row="skip", limit=2)
    assert [r["id"] for r in rows] == ["a", "b"] and [n for _, n, _ in rows.skipped] == [2]
    assert [r["id"] for r in load_records(write(tmp_path / "ok.jsonl", QA), limit=1)] == ["a"]
    assert len(load_records(tmp_path / "ok.jsonl", limit=10)) == 3


def test_duplicate_ids_are_an_error(tmp_path):
    f = write(tmp_path / "qa.jsonl", [QA[0], QA[1], {**QA[2], "id": "a"}])
    with pytest.raises(DataError, match=r"qa\.jsonl: the id 'a' occurs more than once"):
        load_records(f)
    # An own id that equals another row's default id is a duplicate too.
    f = write(tmp_path / "mixed.jsonl", [{"question": "q", "answer": "1"}, {"id": "0", "question": "r", "answer": "2"}])
    with pytest.raises(DataError, match="the id '0' occurs more than once"):
        load_records(f)


def test_empty_or_all_bad_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"empty\.jsonl: no usable rows"):
        load_records(write(tmp_path / "empty.jsonl", []))
    with pytest.raises(DataError, match=r"bad\.jsonl: no usable rows"):
        load_records(write(tmp_path / "bad.jsonl", [{"question": "q"}]), on_bad_row="skip")
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="on_bad_row"):
        load_records(tmp_path / "empty.jsonl", on_bad_row="ignore")


# --------------------------------------------------------------------------- the prompt sampler

def test_prompt_sampler_epochs_are_seeded_permutations():
    s = PromptSampler(7, seed=3)
    first, second = s.take(7), s.take(7)
    assert sorted(first) == sorted(second) == list(range(7)) and first != second
    assert PromptSampler(7, seed=3).take(14) == first + second
    assert PromptSampler(7, seed=4).take(7) != first
    assert s.state() == {"epoch": 1, "index": 7}


def test_prompt_sampler_resumes_from_its_state():
    s = PromptSampler(5, seed=0)
    s.take(8)
    resumed = PromptSampler(5, 0, **s.state())
    assert resumed.take(9) == s.take(9)
