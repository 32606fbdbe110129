"""Multiple-choice scoring: exact log-likelihoods against a direct log_softmax, accuracy on a case the model
is sure of, lm-eval's continuation split, data loading, and the CLI with two models side by side."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softcot.chartok import build_char_tokenizer
from softcot.io import DataError, write_jsonl
from softcot.modeling import tiny_model
from softcot.ood import (DEFAULT_CONTEXT, context_template, encode_pair, load_choice_records, main, ood,
                         score_choices)
from softcot.toy import TOY_PROMPT_TEMPLATE, format_prompt

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

RECORDS = [
    {"id": "a", "question": "2,4,6,?", "choices": ["8", "9", "10", "7"], "label": 0, "source": "toy_seq"},
    {"id": "b", "question": "10,7,4,?", "choices": ["2", "1", "0"], "label": 1, "source": "toy_seq"},
    {"id": "c", "question": "Which gas do plants absorb?", "choices": ["carbon dioxide", "oxygen"], "label": 0,
     "source": "arc"},
    {"id": "d", "question": "A man is sitting on a roof. he", "choices": ["starts pulling up roofing.",
     "is ripping level tiles off.", "holds a rope."], "label": 0, "source": "hellaswag"},
]


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def random_model(tok):
    torch.set_num_threads(1)
    return tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=1)


def direct_loglik(model, tok, context: str, continuation: str) -> tuple[float, int]:
    """One unpadded forward pass, full-vocabulary log_softmax, the continuation's tokens summed."""
    ctx = tok.encode(context, add_special_tokens=False)
    ids = tok.encode(context + continuation, add_special_tokens=False)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(len(ctx), len(ids))), len(ids) - len(ctx)


def test_loglik_equals_direct_log_softmax(random_model, tok):
    for bs in (1, 3, 16):            # batching (right padding, length sorting) changes nothing
        res = score_choices(random_model, tok, RECORDS, batch_size=bs, add_special_tokens=False)
        nll = 0.0
        for r, item in zip(RECORDS, res["items"]):
            context = format_prompt(r["question"], context_template(r["source"]))
            for c, got, n_tok in zip(r["choices"], item["loglik"], item["n_tokens"]):
                want, n = direct_loglik(random_model, tok, context, " " + c)
                assert got == pytest.approx(want, abs=1e-4) and n_tok == n == len(" " + c)
            want_c, n_c = direct_loglik(random_model, tok, context, " " + r["choices"][r["label"]])
            nll += -want_c / n_c
            s = item["loglik"]
            assert item["pred"] == max(range(len(s)), key=s.__getitem__)
            per_byte = [x / len((" " + c).encode()) for x, c in zip(s, r["choices"])]
            assert item["pred_norm"] == max(range(len(s)), key=per_byte.__getitem__)
        assert res["nll"] == pytest.approx(nll / len(RECORDS), abs=1e-4)
        assert res["n"] == len(RECORDS)
        assert res["acc"] == pytest.approx(sum(i["pred"] == i["label"] for i in res["items"]) / len(RECORDS))
        assert res["acc_norm"] == pytest.approx(sum(i["pred_norm"] == i["label"] for i in res["items"]) / len(RECORDS))


def train_on_answers(tok, records, steps=80, seed=0):
    """A tiny model trained until the right continuations are near-certain."""
    model = tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=seed)
    texts = [format_prompt(r["question"], context_template(r["source"])) + " " + r["choices"][r["label"]]
             for r in records]
    enc = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    T = max(map(len, enc))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(e)) + e for e in enc])
    labels = ids.masked_fill(ids == tok.pad_token_id, -100)
    mask = (ids != tok.pad_token_id).long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def sure_model(tok):
    torch.manual_seed(0)
    return train_on_answers(tok, RECORDS)


def test_accuracy_when_the_answer_is_certain(sure_model, random_model, tok):
    res = score_choices(sure_model, tok, RECORDS, batch_size=4, add_special_tokens=False)
    assert res["acc"] == 1.0 and res["acc_norm"] == 1.0
    assert res["nll"] < 0.2                               # near-certain: per-token NLL close to 0
    base = score_choices(random_model, tok, RECORDS, batch_size=4, add_special_tokens=False)
    assert base["nll"] > 1.0 > res["nll"]


def test_encode_pair_and_contexts(tok):
    ctx, cont = encode_pair(tok, "Answer: ", "yes", add_special_tokens=False)   # trailing space moves over
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " yes"
    ctx, cont = encode_pair(tok, "", "ab", add_special_tokens=False)             # empty context: start token
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "ab"
    assert context_template("arc") == context_template("mmlu") == DEFAULT_CONTEXT == "Question: {question}\nAnswer:"
    assert context_template("hellaswag") == "{question}"
    assert context_template("toy_seq") == TOY_PROMPT_TEMPLATE
    assert context_template("arc", "Q: {question}\nA:") == "Q: {question}\nA:"


def test_load_choice_records(tmp_path):
    f = tmp_path / "mc.jsonl"
    write_jsonl(f, RECORDS)
    assert load_choice_records("toy", f, limit=2) == RECORDS[:2]
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [RECORDS[0], {**RECORDS[1], "label": 7}])
    with pytest.raises(DataError, match="line 2"):
        load_choice_records("toy", bad)
    plain = tmp_path / "plain.jsonl"
    write_jsonl(plain, [{"question": "q", "answer": "1"}])
    with pytest.raises(DataError, match="not a known multiple-choice benchmark"):
        load_choice_records("gsm8k", plain)
    arc = DATA / "arc_challenge" / "ARC-Challenge-Test.jsonl"
    if arc.exists():                                      # raw ARC through load_benchmark
        rows = load_choice_records("arc_challenge", arc, limit=3)
        assert len(rows) == 3 and rows[0]["source"] == "arc" and isinstance(rows[0]["label"], int)


def test_ood_side_by_side_and_cli(tok, sure_model, random_model, tmp_path, capsys):
    dirs = {}
    for name, m in (("base", random_model), ("tuned", sure_model)):
        dirs[name] = tmp_path / name
        m.save_pretrained(dirs[name])
        tok.save_pretrained(dirs[name])
    data = tmp_path / "toy.jsonl"
    write_jsonl(data, RECORDS)
    from softcot.modeling import ModelConfig
    res = ood({n: ModelConfig(name_or_path=str(d), add_special_tokens=False) for n, d in dirs.items()},
              {"toy": data}, batch_size=4, progress=False)
    assert res["models"]["tuned"]["benchmarks"]["toy"]["acc"] == 1.0
    assert res["models"]["base"]["benchmarks"]["toy"]["nll"] > res["models"]["tuned"]["benchmarks"]["toy"]["nll"]
    out = tmp_path / "ood.json"
    rc = main(["--model", f"base={dirs['base']}", "--model", f"tuned={dirs['tuned']}", "--data", f"toy={data}",
               "--limit", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert saved["n"] == {"toy": 3} and set(saved["models"]) == {"base", "tuned"}
    md = out.with_suffix(".md").read_text()
    assert "| base |" in md and "| tuned |" in md and "toy acc_norm" in md
    capsys.readouterr()
    assert main(["--model", f"base={dirs['base']}", "--data", f"toy={data}", "--limit", "0", "--out", str(out)]) == 2
    assert "config error: --limit" in capsys.readouterr().err
    assert main(["--model", str(dirs["base"]), "--data", f"toy={data}", "--out", str(out)]) == 2
    assert "config error: --model" in capsys.readouterr().err
