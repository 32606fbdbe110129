"""softcot.positions: the CoT term's gradient split over CoT steps. The buckets' gradients add up to the loss's
own CoT gradient, step 0's equals a direct computation from the prompt's logits, steps after a row's CoT ended
carry exactly zero gradient, and `softcot diagnose --positions` writes the split for every mode."""
from __future__ import annotations

import json

import pytest
import torch

from softcot.diagnose import main
from softcot.loss import rloo_advantages
from softcot.positions import MARKER_BUCKET, bucket_gradients, bucket_labels, step_buckets
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig
from tests.helpers import save_tiny

# A one-character marker that a random tiny model samples now and then: rows end at different steps.
RCFG = RolloutConfig(max_cot_tokens=12, max_answer_tokens=3, marker="e")
PROMPTS = [f"Q: {i}+{i % 5}\nA:" for i in range(16)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from softcot.modeling import ModelConfig, load_model
    path = save_tiny(tmp_path_factory.mktemp("pos") / "m", seed=3)
    return load_model(ModelConfig(name_or_path=str(path)), device="cpu")


def _rollout(tiny, kind: str):
    model, tok = tiny
    ro = rollout(model, tok, PROMPTS, CoTMode(kind), RCFG, generator=torch.Generator().manual_seed(0))
    adv = rloo_advantages([float((7 * i) % 4) for i in range(len(PROMPTS))], 4)
    return ro, adv


def test_bucket_labels_and_bad_edges():
    assert bucket_labels([1, 2, 4, 8]) == ["0", "1", "2-3", "4-7", "8+", MARKER_BUCKET]
    assert bucket_labels([3]) == ["0-2", "3+", MARKER_BUCKET]
    for bad in ([], [0, 2], [2, 2], [4, 2]):
        with pytest.raises(ValueError, match="increasing step indices >= 1"):
            bucket_labels(bad)


def test_step_buckets_of_scored_steps_only():
    # two rows, CoT from slot 2: row 0 ran 5 steps and ended by the marker, row 1 ran 2 steps (budget or EOS)
    cot = torch.zeros(2, 9, dtype=torch.bool)
    cot[0, 2:7] = True
    cot[1, 2:4] = True
    idx = step_buckets(cot, 2, [True, False], [1, 2, 4])
    assert idx.tolist() == [[-1, -1, 0, 1, 2, 2, 4, -1, -1],     # step 4 completed the marker: bucket 4
                            [-1, -1, 0, 1, -1, -1, -1, -1, -1]]   # holes after the row's CoT: no bucket


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_buckets_add_up_to_the_loss_cot_gradient(tiny, kind):
    model, _ = tiny
    ro, adv = _rollout(tiny, kind)
    res = bucket_gradients(model, ro, adv, [1, 2, 4, 8], micro_batch=5)
    g = res["grads"]
    labels = bucket_labels([1, 2, 4, 8])
    total = sum(g[k] for k in labels)
    assert float(g["cot"].norm()) > 0 and float(g["answer"].norm()) > 0
    assert torch.allclose(total, g["cot"], rtol=1e-4, atol=1e-5 * float(g["cot"].abs().max()))
    shares = sum(float(g[k] @ g["cot"]) for k in labels) / float(g["cot"].pow(2).sum())
    assert shares == pytest.approx(1.0, abs=1e-4)
    assert sum(res["slots"].values()) == int(ro.cot_mask.sum())
    if kind == "hard":          # sampled tokens meet the marker: some rows end early, some by the marker
        assert res["slots"][MARKER_BUCKET] == sum(ro.stopped_by_marker) > 0


def test_step_zero_is_the_first_cot_token_given_the_prompt(tiny):
    """Bucket '0' against a direct computation: the log-prob of each row's first CoT token from the prompt's
    last logits (hard, tau = 1), weighted by the advantages. A row whose first step completed the marker counts
    in the marker's bucket: its advantage is set to 0 here."""
    model, _ = tiny
    ro, adv = _rollout(tiny, "hard")
    adv = torch.where(torch.tensor(ro.stopped_by_marker) & (ro.cot_len == 1), 0.0, adv)
    g0 = bucket_gradients(model, ro, adv, [1])["grads"]["0"]
    P = ro.cot_start
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ro.input_ids[:, :P], attention_mask=ro.attention_mask[:, :P],
                   position_ids=ro.position_ids[:, :P]).logits[:, -1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ro.input_ids[:, P:P + 1]).squeeze(-1)
    (-(adv * logp).sum() / len(adv)).backward()
    direct = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    assert torch.allclose(g0, direct, rtol=1e-4, atol=1e-6)


def test_steps_after_a_row_ended_carry_no_gradient(tiny):
    """One row's advantage alone: every bucket past its last CoT step has exactly zero gradient, the ones it
    reached do not."""
    model, _ = tiny
    ro, _ = _rollout(tiny, "hard")
    lens = ro.cot_len.tolist()
    row = min(range(len(lens)), key=lambda i: (lens[i] < 2, lens[i]))          # the shortest CoT of >= 2 steps
    n = lens[row]
    assert n < RCFG.max_cot_tokens, "the test needs a row that ended early"
    adv = torch.zeros(len(lens))
    adv[row] = 1.0
    edges = [1, n]                        # buckets: step 0, steps 1..n-1, steps >= n (past the row's CoT)
    g = bucket_gradients(model, ro, adv, edges)["grads"]
    past = bucket_labels(edges)[2]
    assert torch.count_nonzero(g[past]) == 0
    reached = [k for k in bucket_labels(edges)[:2] + [MARKER_BUCKET] if torch.count_nonzero(g[k])]
    assert "0" in reached and torch.allclose(sum(g[k] for k in reached), g["cot"], atol=1e-6)


def test_cli_positions_without_snr(tmp_path, capsys):
    model = save_tiny(tmp_path / "m", seed=1)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "question": f"{i}+1", "answer": str(i + 1)}) + "\n"
                            for i in range(6)))
    out = tmp_path / "positions.json"
    assert main(["--model", str(model), "--data", str(data), "--modes", "hard", "fuzzy", "--batches", "2",
                 "--prompts", "2", "--group", "3", "--max-cot-tokens", "6", "--max-answer-tokens", "2",
                 "--template", "toy", "--positions", "1", "4", "--no-snr", "--micro-batch", "4",
                 "--reward", "tests.helpers:parity_reward",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["positions"] == [1, 4] and res["config"]["snr"] is False
    assert res["model_size"]["n_params"] == sum(p.numel() for p in __import__("torch").nn.Module.parameters(
        __import__("transformers").AutoModelForCausalLM.from_pretrained(str(model))))
    for kind in ("hard", "fuzzy"):
        r = res["modes"][kind]
        assert "total" not in r                                        # --no-snr
        p = r["positions"]
        assert list(p["buckets"]) == ["0", "1-3", "4+", MARKER_BUCKET] and p["batches"] == 2
        assert sum(b["share"] for b in p["buckets"].values()) == pytest.approx(1.0, abs=1e-3)
        assert p["cot"]["grad_norm"] > 0 and p["answer"]["grad_norm"] > 0 and p["cot"]["vs_answer"] > 0
    assert "CoT term |g|" in capsys.readouterr().out
