"""softcot.toy: the embedded default's procedural data: determinism, disjoint splits, correct CoTs, labels
of the out-of-domain family, the helpers, and `softcot toy-data` with a config file and overrides."""
from __future__ import annotations

import re

import pytest

from softcot import toy as toy_mod
from softcot.config import ConfigError, from_dict
from softcot.io import read_jsonl
from softcot.prompt import TOY_SEQ_SOURCE
from softcot.toy import (ARITH_SOURCE, LETTER_ALPHABETS, MARKER, SEQ_SOURCE, SPLITS, TOY_PROMPT_TEMPLATE, ToyConfig,
                         demo_text, extract_boxed, format_prompt, is_correct, make_splits)

SMALL = dict(n_pretrain=400, n_train=100, n_val=16, n_test=16, n_test_hard=16, n_ood=20, n_ood_train=60)


@pytest.fixture(scope="module")
def splits():
    return make_splits(ToyConfig(seed=0, **SMALL))


def test_splits_deterministic_and_seeded(splits):
    again = make_splits(ToyConfig(seed=0, **SMALL))
    assert again == splits
    other = make_splits(ToyConfig(seed=1, **SMALL))
    for name in ("pretrain", "train", "test", "ood"):
        assert [r["question"] for r in other[name]] != [r["question"] for r in splits[name]]
    # Evaluation splits do not depend on the size of the training split.
    bigger = make_splits(ToyConfig(seed=0, **{**SMALL, "n_pretrain": 800}))
    for name in ("val", "test", "test_hard", "ood"):
        assert bigger[name] == splits[name]


def test_split_sizes_and_no_shared_question(splits):
    assert {k: len(v) for k, v in splits.items()} == {
        "pretrain": 400, "train": 100, "val": 16, "test": 16, "test_hard": 16, "ood": 20, "ood_train": 60}
    seen: dict[str, str] = {}
    for name, rows in splits.items():
        for r in rows:
            assert r["question"] not in seen, f"{r['question']} in {seen.get(r['question'])} and {name}"
            seen[r["question"]] = name
    ids = [r["id"] for rows in splits.values() for r in rows]
    assert len(ids) == len(set(ids))


def test_shortcut_demos_only_in_pretraining(splits):
    cut = make_splits(ToyConfig(seed=0, **SMALL, shortcut_rate=0.5))
    for name in splits:                      # the same questions everywhere; only pre-training demos change
        assert [r["question"] for r in cut[name]] == [r["question"] for r in splits[name]]
        if name != "pretrain":
            assert cut[name] == splits[name]
    short = [r for r in cut["pretrain"] if r.get("shortcut")]
    assert 0.4 < len(short) / len(cut["pretrain"]) < 0.6          # 400 demos at rate 0.5: 3.5 sd either side
    for r in short:
        assert r["cot"] == f"The final answer is: \\boxed{{{r['answer']}}}"
    with pytest.raises(ConfigError, match="^shortcut_rate: "):
        make_splits(ToyConfig(**SMALL, shortcut_rate=1.0))


@pytest.mark.parametrize("style", ["chain", "rewrite", "steps"])
def test_cot_arithmetic_is_correct(splits, style):
    cfg = ToyConfig(**SMALL, cot_style=style)
    data = splits if style == ToyConfig().cot_style else make_splits(cfg)
    for name in ("pretrain", "train", "val", "test", "test_hard"):
        lo, hi = {"test_hard": cfg.steps_hard, "train": cfg.steps_train,
                  "pretrain": cfg.steps_pretrain}.get(name, cfg.steps_test)
        for r in data[name]:
            assert r["source"] == ARITH_SOURCE and lo <= r["n_steps"] <= hi
            assert set(r) == {"id", "question", "answer", "source", "cot", "n_steps"}
            steps_text, tail = r["cot"].split(f" {MARKER} ")
            assert tail == "\\boxed{" + r["answer"] + "}"
            tokens = re.findall(r"\d+|[+-]", r["question"])
            v = int(tokens[0])
            assert 1 <= v <= cfg.max_operand
            steps = steps_text.split(" = " if style == "rewrite" else " ")
            assert len(steps) == r["n_steps"] == (len(tokens) - 1) // 2
            for k, st in enumerate(steps):
                op, b = tokens[1 + 2 * k], int(tokens[2 + 2 * k])
                assert 1 <= b <= cfg.max_operand
                new = v + b if op == "+" else v - b
                if style == "steps":
                    assert st == f"{v}{op}{b}={new}"
                elif style == "chain":   # this operation, its result, then the operations still to do
                    assert st == f"{v}{op}{b}={new}" + "".join(tokens[3 + 2 * k:])
                    assert eval(st.split("=")[1]) == eval(r["question"])
                else:   # the running value, then the operations still to do
                    assert st == str(new) + "".join(tokens[3 + 2 * k:])
                    assert eval(st) == eval(r["question"])
                assert 0 <= new <= cfg.max_value
                v = new
            assert r["answer"] == str(v) == str(eval(r["question"]))
            assert extract_boxed(r["cot"]) == r["answer"] and is_correct(r["cot"], r["answer"])
    # Both styles draw the same questions.
    assert [r["question"] for r in data["test"]] == [r["question"] for r in splits["test"]]


def test_ood_labels(splits):
    for name in ("ood", "ood_train"):
        for r in splits[name]:
            assert r["source"] == SEQ_SOURCE and set(r) == {"id", "question", "choices", "label", "source"}
            terms = r["question"].rstrip(",?").split(",")
            alpha = next(a for a in LETTER_ALPHABETS if terms[0] in a)
            idx = [alpha.index(t) for t in terms]
            d = idx[1] - idx[0]
            assert d != 0 and all(b - a == d for a, b in zip(idx, idx[1:]))
            assert len(r["choices"]) == 4 == len(set(r["choices"]))
            assert all(c in alpha for c in r["choices"])
            assert r["choices"][r["label"]] == alpha[idx[-1] + d]
    for r in make_splits(ToyConfig(**SMALL, seq_kind="numbers"))["ood"]:
        terms = [int(t) for t in r["question"].rstrip(",?").split(",")]
        d = terms[1] - terms[0]
        assert d != 0 and all(b - a == d for a, b in zip(terms, terms[1:]))
        assert len(set(r["choices"])) == 4 and r["choices"][r["label"]] == str(terms[-1] + d)


def test_prompt_and_boxed_helpers():
    assert format_prompt("7+5-3") == "Q: 7+5-3\nA:" == TOY_PROMPT_TEMPLATE.replace("{question}", "7+5-3")
    assert format_prompt("1+1", "x {question} \\boxed{} y") == "x 1+1 \\boxed{} y"
    assert extract_boxed("a \\boxed{1} b \\boxed{{2}3}") == "{2}3"
    assert extract_boxed("\\boxed{12") is None and extract_boxed("none") is None
    assert not is_correct("The final answer is: \\boxed{3}", "4")


def test_toy_cli_writes_every_split_from_config_file_and_overrides(tmp_path, capsys):
    """`softcot toy-data --config F --out D key=value ...`: the file's keys, then the overrides, then the
    splits of exactly that ToyConfig."""
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("seed: 1\nn_train: 50\nsteps_hard: [5, 5]\n")
    out = tmp_path / "data"
    overrides = [f"{k}={v}" for k, v in {**SMALL, "n_train": 30, "seed": 2}.items()]   # beat the file's n_train, seed
    assert toy_mod.main(["--config", str(cfg), "--out", str(out), *overrides]) == 0
    want = make_splits(ToyConfig(**{**SMALL, "n_train": 30, "seed": 2, "steps_hard": (5, 5)}))
    for name in SPLITS:
        assert read_jsonl(out / f"{name}.jsonl") == want[name], name
    assert "train=30" in capsys.readouterr().out


def test_toy_config_errors_name_the_key(tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("seed: 1\nn_trian: 5\n")
    with pytest.raises(ConfigError, match=r"n_trian: unknown key; allowed keys here: .*\bn_train\b"):
        toy_mod.main(["--config", str(cfg), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="bogus"):
        from_dict(ToyConfig, {"bogus": 1})
    with pytest.raises(ConfigError, match=r"^steps_train: got \[4, 3\]"):
        from_dict(ToyConfig, {"steps_train": [4, 3]})
    with pytest.raises(ConfigError, match=r"^max_operand: got 12"):
        make_splits(ToyConfig(max_operand=12))
    with pytest.raises(ConfigError, match=r"^split test_hard: could only draw"):
        make_splits(ToyConfig(**{**SMALL, "steps_hard": (1, 1), "n_test_hard": 200}))


def test_demo_text_is_prompt_and_completion(splits):
    r = splits["pretrain"][0]
    assert demo_text(r) == (f"Q: {r['question']}\nA:", " " + r["cot"])
    o = splits["ood_train"][0]
    assert demo_text(o) == (f"Q: {o['question']}\nA:", " " + o["choices"][o["label"]])
    assert SEQ_SOURCE == TOY_SEQ_SOURCE == o["source"]
