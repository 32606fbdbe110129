"""The embedded default's data (softcot.toy), char tokenizer (softcot.chartok) and base pre-training
(softcot.pretrain): determinism, disjoint splits, correct CoTs, exact tokenizer round trips, a loadable
pre-trained model, and exact resume after an interruption."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from softcot.chartok import build_char_tokenizer
from softcot.io import read_jsonl
from softcot.pretrain import PretrainConfig, pretrain
from softcot.toy import (ARITH_SOURCE, LETTER_ALPHABETS, MARKER, SEQ_SOURCE, TOY_PROMPT_TEMPLATE, ToyConfig,
                         config_from_dict, extract_boxed, format_prompt, is_correct, make_splits)
from softcot import pretrain as pretrain_mod
from softcot import toy as toy_mod

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(n_pretrain=400, n_train=100, n_val=16, n_test=16, n_test_hard=16, n_ood=20, n_ood_train=60)
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, batch_size=8, lr=3e-3, warmup=2,
            ckpt_every=3, eval_every=1000, n_eval=4, max_new_tokens=24, threads=1)


@pytest.fixture(scope="module")
def splits():
    return make_splits(ToyConfig(seed=0, **SMALL))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "data"
    assert toy_mod.main(["--out", str(out), *sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])]) == 0
    return out


# ---------------------------------------------------------------------------------------------- toy data

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
    with pytest.raises(ValueError, match="shortcut_rate"):
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


def test_toy_cli_writes_files_and_rejects_unknown_keys(data_dir, tmp_path, capsys):
    for name in ("pretrain", "train", "val", "test", "test_hard", "ood", "ood_train"):
        assert (data_dir / f"{name}.jsonl").exists()
    assert len(read_jsonl(data_dir / "pretrain.jsonl")) == 400 and len(read_jsonl(data_dir / "train.jsonl")) == 100
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("seed: 1\nn_trian: 5\n")
    assert toy_mod.main(["--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "n_trian" in err and "n_train" in err
    with pytest.raises(ValueError, match="bogus"):
        config_from_dict(ToyConfig, {"bogus": 1})


# ---------------------------------------------------------------------------------------------- tokenizer

ROUND_TRIP = ["Q: 7+5-3+2\nA: 7+5=12 12-3=9 9+2=11 The final answer is: \\boxed{11}",
              "  leading and trailing  ", "\\frac{a}{b} {}{{}}\t\r\n", "~!@#$%^&*()_+`-=[]|;':\",./<>?", ""]


def test_tokenizer_round_trip_and_reload(tmp_path):
    from transformers import AutoTokenizer

    tok = build_char_tokenizer(["héllo"])
    assert tok.pad_token_id == 0 and tok.padding_side == "left"
    assert {tok.bos_token, tok.eos_token, tok.unk_token} == {"<bos>", "<eos>", "<unk>"}
    for s in ROUND_TRIP + ["héllo"]:
        ids = tok.encode(s)
        assert len(ids) == len(s) and tok.unk_token_id not in ids   # one token per char, none added
        assert tok.decode(ids) == s
    batch = tok(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [0, 0] and batch["attention_mask"][0] == [0, 0, 1, 1]
    assert tok.decode(tok.encode("a☃b")) == "a<unk>b"   # unknown characters map to <unk>
    tok.save_pretrained(tmp_path)
    re_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert re_tok.get_vocab() == tok.get_vocab() and re_tok.padding_side == "left"
    for s in ROUND_TRIP + ["héllo"]:
        assert re_tok.encode(s) == tok.encode(s)
        assert re_tok.decode(re_tok.encode(s)) == s
    assert re_tok.decode(re_tok.encode("ab") + [re_tok.eos_token_id], skip_special_tokens=True) == "ab"


# ---------------------------------------------------------------------------------------------- pretraining

def _cfg(**kw) -> PretrainConfig:
    return config_from_dict(PretrainConfig, {**TINY, **kw})


def test_tiny_pretrain_writes_loadable_model(data_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "base"
    res = pretrain(_cfg(steps=30), data_dir, out, tmp_path / "ck", progress=False)
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
              "pretrain_metrics.jsonl", "base_eval.json", "pretrain_config.json"):
        assert (out / f).exists(), f
    ev = json.loads((out / "base_eval.json").read_text())
    assert ev == json.loads(json.dumps(res))
    for split in ("val", "test", "test_hard"):
        assert 0.0 <= ev[split]["greedy_acc"] <= 1.0 and "sample_acc" in ev[split]
    assert 0.0 <= ev["ood"]["acc"] <= 1.0
    rows = read_jsonl(out / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all({"step", "loss", "lr", "seconds"} <= set(r) for r in rows)
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.5, (first, last)

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id == 0
    enc = tok([format_prompt("1+2"), format_prompt("3+4-5+1")], return_tensors="pt", padding=True)
    gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert gen.shape[0] == 2 and gen.shape[1] > enc["input_ids"].shape[1]
    # Left-padded batched greedy decoding matches decoding the row alone.
    alone = model.generate(**tok([format_prompt("1+2")], return_tensors="pt"), max_new_tokens=8, do_sample=False)
    n = enc["input_ids"].shape[1]
    assert tok.decode(gen[0, n:], skip_special_tokens=True) == tok.decode(alone[0, alone.shape[1] - (gen.shape[1] - n):],
                                                                          skip_special_tokens=True)


def _params(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _assert_same_weights(a: Path, b: Path) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k


def test_resume_is_exact(data_dir, tmp_path):
    steps = 10
    cfg = _cfg(steps=steps, n_sample=0)
    pretrain(cfg, data_dir, tmp_path / "a", tmp_path / "ck_a", progress=False)
    # Interrupted at step 4 (between checkpoints 3 and 6: the resumed run restarts from step 3).
    assert pretrain(cfg, data_dir, tmp_path / "b", tmp_path / "ck_b", stop_at=3, progress=False) is None
    assert not (tmp_path / "b").exists()
    pretrain(_cfg(steps=steps, n_sample=0), data_dir, None, tmp_path / "ck_b", stop_at=4, progress=False)
    pretrain(_cfg(steps=steps, n_sample=0), data_dir, tmp_path / "b", tmp_path / "ck_b", progress=False)
    _assert_same_weights(tmp_path / "a", tmp_path / "b")
    ra, rb = read_jsonl(tmp_path / "a" / "pretrain_metrics.jsonl"), read_jsonl(tmp_path / "b" / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rb] == list(range(1, steps + 1))
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_resume_after_kill_9(data_dir, tmp_path):
    """The CLI, killed with SIGKILL mid-run and started again with the same command, ends with the weights
    of an uninterrupted run."""
    steps = 40
    sets = sum((["--set", f"{k}={v}"] for k, v in {**TINY, "steps": steps, "ckpt_every": 2, "n_sample": 0}.items()), [])
    cmd = [sys.executable, "-m", "softcot.cli", "pretrain", "--data", str(data_dir), "--no-progress", *sets]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ck = tmp_path / "ck_kill"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed"), "--ckpt-dir", str(ck)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (ck / "latest").exists() and (ck / "latest").read_text().strip() >= "step_000004":
            break
        time.sleep(0.05)
    was_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert was_running, "the run finished before it could be killed; make it longer"
    assert not (tmp_path / "killed").exists()
    subprocess.run(cmd + ["--out", str(tmp_path / "killed"), "--ckpt-dir", str(ck)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    pretrain(_cfg(steps=steps, ckpt_every=2, n_sample=0), data_dir, tmp_path / "clean", tmp_path / "ck_clean",
             progress=False)
    _assert_same_weights(tmp_path / "killed", tmp_path / "clean")
    rk = read_jsonl(tmp_path / "killed" / "pretrain_metrics.jsonl")
    rc = read_jsonl(tmp_path / "clean" / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rk] == list(range(1, steps + 1))   # rows after the last checkpoint were redone
    assert [r["loss"] for r in rk] == [r["loss"] for r in rc]


def test_pretrain_rejects_unknown_key_and_foreign_checkpoint(data_dir, tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("hidden_size: 32\nlearning_rate: 0.1\n")
    rc = pretrain_mod.main(["--data", str(data_dir), "--config", str(cfg), "--out", str(tmp_path / "o"),
                            "--ckpt-dir", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert rc == 2 and "learning_rate" in err and "lr" in err
    pretrain(_cfg(steps=3, n_sample=0), data_dir, None, tmp_path / "ck2", stop_at=3, progress=False)
    with pytest.raises(ValueError, match="different config"):
        pretrain(_cfg(steps=3, n_sample=0, hidden_size=64), data_dir, None, tmp_path / "ck2", progress=False)
