"""softcot.choices: multiple-choice log-likelihoods against a direct full-vocabulary log_softmax, accuracy
on a model that is sure of the answers, and lm-eval's split of context and continuation."""
from __future__ import annotations

import pytest
import torch

from softcot.choices import encode_pair, loglikelihoods, score_choices
from softcot.prompt import build_prompt, context_template
from tests.helpers import MC_RECORDS


def direct_loglik(model, tok, context: str, continuation: str) -> tuple[float, int]:
    """One unpadded forward pass, full-vocabulary log_softmax, the continuation's tokens summed."""
    ctx = tok.encode(context, add_special_tokens=False)
    ids = tok.encode(context + continuation, add_special_tokens=False)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(len(ctx), len(ids))), len(ids) - len(ctx)


def test_loglik_equals_direct_log_softmax(random_mc_model, mc_tok):
    model, tok = random_mc_model, mc_tok
    for bs in (1, 3, 16):            # batching (right padding, length sorting) changes nothing
        res = score_choices(model, tok, MC_RECORDS, batch_size=bs, add_special_tokens=False)
        nll = 0.0
        for r, item in zip(MC_RECORDS, res["items"]):
            context = build_prompt(r["question"], context_template(r["source"]))
            for c, got, n_tok in zip(r["choices"], item["loglik"], item["n_tokens"]):
                want, n = direct_loglik(model, tok, context, " " + c)
                assert got == pytest.approx(want, abs=1e-4) and n_tok == n == len(" " + c)
            want_c, n_c = direct_loglik(model, tok, context, " " + r["choices"][r["label"]])
            nll += -want_c / n_c
            s = item["loglik"]
            assert item["pred"] == max(range(len(s)), key=s.__getitem__)
            per_byte = [x / len((" " + c).encode()) for x, c in zip(s, r["choices"])]
            assert item["pred_norm"] == max(range(len(s)), key=per_byte.__getitem__)
            assert item["id"] == r["id"] and item["label"] == r["label"]
        assert res["nll"] == pytest.approx(nll / len(MC_RECORDS), abs=1e-4)
        assert res["n"] == len(MC_RECORDS)
        assert res["acc"] == pytest.approx(sum(i["pred"] == i["label"] for i in res["items"]) / len(MC_RECORDS))
        n_norm = sum(i["pred_norm"] == i["label"] for i in res["items"])
        assert res["acc_norm"] == pytest.approx(n_norm / len(MC_RECORDS))


def test_loglikelihoods_of_raw_pairs_in_input_order(random_mc_model, mc_tok):
    pairs = [encode_pair(mc_tok, "Q: 1+1\nA:", " 2", add_special_tokens=False),
             encode_pair(mc_tok, "a much longer context than the others", " x y z", add_special_tokens=False),
             encode_pair(mc_tok, "", "ab", add_special_tokens=False)]
    got = loglikelihoods(random_mc_model, pairs, batch_size=2)
    for (ctx, cont), (ll, n) in zip(pairs, got, strict=True):
        ids = ctx + cont
        with torch.no_grad():
            logp = torch.log_softmax(random_mc_model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        assert n == len(cont)
        assert ll == pytest.approx(sum(float(logp[t - 1, ids[t]]) for t in range(len(ctx), len(ids))), abs=1e-4)


def test_accuracy_when_the_answer_is_certain(sure_mc_model, random_mc_model, mc_tok):
    res = score_choices(sure_mc_model, mc_tok, MC_RECORDS, batch_size=4, add_special_tokens=False)
    assert res["acc"] == 1.0 and res["acc_norm"] == 1.0
    assert res["nll"] < 0.2                               # near-certain: per-token NLL close to 0
    base = score_choices(random_mc_model, mc_tok, MC_RECORDS, batch_size=4, add_special_tokens=False)
    assert base["nll"] > 1.0 > res["nll"]


def test_encode_pair_moves_trailing_spaces_and_starts_empty_contexts(mc_tok):
    tok = mc_tok
    ctx, cont = encode_pair(tok, "Answer: ", "yes", add_special_tokens=False)   # trailing space moves over
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " yes"
    ctx, cont = encode_pair(tok, "", "ab", add_special_tokens=False)             # empty context: start token
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "ab"
    with pytest.raises(ValueError, match="encodes to no tokens"):
        encode_pair(tok, "Answer:", "", add_special_tokens=False)
