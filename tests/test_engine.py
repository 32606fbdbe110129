"""The engine against independent oracles: generate(), torch.distributions, closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from softcot.loss import Scorer, gaussian_logdensity, policy_loss, previous_real_slot, rloo_advantages
from softcot.modes import CoTMode, embedding_rms, mix, noise_sigma
from softcot.rollout import RolloutConfig, rollout
from tests.helpers import PROMPTS, make_tiny

ARCHS = ["llama", "qwen2"]


def hf_greedy(model, tok, prompts, n):
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = model.generate(**enc, do_sample=False, max_new_tokens=n, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    return [row[enc["input_ids"].shape[1]:].tolist() for row in out]


def cut_at_eos(ids, eos):
    return ids[:ids.index(eos) + 1] if eos in ids else ids


@pytest.mark.parametrize("arch", ARCHS)
def test_hard_greedy_equals_generate_on_left_padded_batch(arch):
    model, tok = make_tiny(arch, seed=1)
    L = 24
    ro = rollout(model, tok, PROMPTS, CoTMode("hard", greedy=True), RolloutConfig(max_cot_tokens=L))
    assert len({len(tok(p)["input_ids"]) for p in PROMPTS}) > 1, "prompts must differ in length"
    ref = hf_greedy(model, tok, PROMPTS, L)
    for ours, theirs in zip(ro.cot_ids, ref):
        assert ours == cut_at_eos(theirs, tok.eos_token_id)[:len(ours)]
        assert len(ours) == len(cut_at_eos(theirs, tok.eos_token_id))


@pytest.mark.parametrize("arch", ARCHS)
def test_fuzzy_greedy_and_cold_soft_equal_hard_greedy(arch):
    model, tok = make_tiny(arch, seed=2)
    cfg = RolloutConfig(max_cot_tokens=20, answer_temperature=0.0)
    hard = rollout(model, tok, PROMPTS, CoTMode("hard", greedy=True), cfg)
    fuzzy = rollout(model, tok, PROMPTS, CoTMode("fuzzy", greedy=True), cfg)
    soft = rollout(model, tok, PROMPTS, CoTMode("soft", tau=1e-6, greedy=True), cfg)
    assert fuzzy.sigma == 0 and soft.sigma == 0
    assert fuzzy.cot_ids == hard.cot_ids and soft.cot_ids == hard.cot_ids
    assert fuzzy.answer_ids == hard.answer_ids and soft.answer_ids == hard.answer_ids


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_preallocated_and_compacted_cache_equal_dynamic_cache(arch, kind, monkeypatch):
    """The in-place cache and mask, with and without compaction (rows whose CoT ended leave the computed
    batch), give the rollout transformers' DynamicCache gives: same tokens, masks, positions, CoT inputs and
    entropies, and the same logits (within float tolerance) wherever a slot is scored, on a left-padded batch
    whose rows end at different steps. The random stream is shared, so sampled modes must agree too."""
    import softcot.rollout as R
    model, tok = make_tiny(arch, seed=4)
    reorders = []
    grow_reorder = R._GrowLayer.reorder
    monkeypatch.setattr(R._GrowLayer, "reorder", lambda self, order: (reorders.append(len(order)),
                                                                      grow_reorder(self, order)))
    monkeypatch.setattr(R, "COMPACT_AT", 0.99)     # compact whenever a row ends: as many reorders as possible
    outs = []
    for pre, compact in ((False, False), (True, False), (True, True)):
        g = torch.Generator().manual_seed(7)
        cfg = RolloutConfig(max_cot_tokens=24, max_answer_tokens=5, marker="e", preallocate=pre, compact=compact,
                            record_entropy=True)
        outs.append(rollout(model, tok, PROMPTS * 4, CoTMode(kind), cfg, generator=g, return_logits=True))
    assert reorders, "the compacted rollout must have compacted at least once"
    ref = outs[0]
    if kind == "hard":
        assert len({len(c) for c in ref.cot_ids}) > 1, "rows must end at different steps"
    scored = ref.cot_mask | ref.answer_mask
    for o in outs[1:]:
        assert o.cot_ids == ref.cot_ids and o.answer_ids == ref.answer_ids
        assert torch.equal(o.attention_mask, ref.attention_mask) and torch.equal(o.position_ids, ref.position_ids)
        assert torch.equal(o.cot_mask, ref.cot_mask) and torch.equal(o.answer_mask, ref.answer_mask)
        # fp32 summation order differs between the caches (and batch sizes); over 24 soft steps it adds up
        torch.testing.assert_close(o.logits[scored], ref.logits[scored], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(o.entropy, ref.entropy, atol=1e-4, rtol=1e-4, equal_nan=True)
        if ref.cot_inputs is not None:
            torch.testing.assert_close(o.cot_inputs, ref.cot_inputs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_teacher_forced_pass_reproduces_rollout_logits(arch, kind):
    model, tok = make_tiny(arch, seed=3)
    g = torch.Generator().manual_seed(0)
    # A marker that the char model hits often ends rows at different steps, so the layout has holes.
    cfg = RolloutConfig(max_cot_tokens=16, max_answer_tokens=6, marker="e")
    ro = rollout(model, tok, PROMPTS * 2, CoTMode(kind), cfg, generator=g, return_logits=True)
    with torch.no_grad():
        tf = Scorer(model).scored_logits(ro)
    scored = ro.cot_mask | ro.answer_mask
    assert scored.sum() > 0 and ro.answer_mask.any()
    # Tolerance: incremental KV-cached decoding vs one full pass differ by fp32 summation order only.
    torch.testing.assert_close(tf[scored], ro.logits[scored], atol=1e-4, rtol=1e-4)


def test_holes_map_each_slot_to_previous_real_slot():
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 1]])
    assert previous_real_slot(mask).tolist() == [[-1, -1, 1, 2, 2, 2, 5]]


def test_gaussian_term_matches_torch_distributions_up_to_constant():
    torch.manual_seed(0)
    h, mean, sigma = torch.randn(5, 7), torch.randn(5, 7), 0.37
    ref = torch.distributions.Normal(mean, sigma).log_prob(h).sum(-1)
    const = -0.5 * 7 * math.log(2 * math.pi * sigma ** 2)
    torch.testing.assert_close(gaussian_logdensity(h, mean, sigma), ref - const)
    torch.testing.assert_close(gaussian_logdensity(h, mean, sigma, keep_const=True), ref)


@pytest.mark.parametrize("kind", ["soft", "fuzzy"])
def test_gaussian_term_gradient_reaches_parameters_and_embeddings(kind):
    model, tok = make_tiny("llama", seed=4)
    ro = rollout(model, tok, PROMPTS, CoTMode(kind), RolloutConfig(max_cot_tokens=6),
                 generator=torch.Generator().manual_seed(0))
    terms = Scorer(model)(ro)
    terms["cot"].sum().backward()
    E = model.get_input_embeddings().weight
    assert torch.isfinite(E.grad).all() and E.grad.abs().sum() > 0
    # Through p: the LM head and the body get gradient from the density's mean p E.
    assert model.lm_head.weight.grad.abs().sum() > 0
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    # The stored noisy inputs are data: the recorded noise has the scale sigma = gamma * rms(E).
    assert ro.sigma == pytest.approx(0.33 * embedding_rms(E))


def test_density_value_is_minus_half_d_per_step_at_rollout_time():
    model, tok = make_tiny("llama", seed=5)
    ro = rollout(model, tok, PROMPTS, CoTMode("soft"), RolloutConfig(max_cot_tokens=8),
                 generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = Scorer(model)(ro)
    d = model.config.hidden_size
    per_step = terms["cot"] / ro.cot_len
    # -||sigma eps||^2 / (2 sigma^2) = -chi2_d / 2, mean -d/2 with sd sqrt(d/2) per step
    assert abs(float(per_step.mean()) + d / 2) < 4 * math.sqrt(d / 2) / math.sqrt(int(ro.cot_len.sum()))


def test_score_function_matches_closed_form_gradient():
    """E[R(h) grad log N(h; mu, s^2)] = grad E[R] for R = 1[w.h > 0]: E[R] = Phi(w.mu / (s |w|)).

    mu = p E comes from the model (one soft CoT step); the estimator is the Scorer's CoT term.
    """
    model, tok = make_tiny("llama", seed=6)
    E = model.get_input_embeddings().weight
    torch.manual_seed(1)
    w = torch.randn(E.shape[1])
    n = 3000
    ro = rollout(model, tok, ["Q: 1+2\nA:"] * n, CoTMode("soft", gamma=0.33),
                 RolloutConfig(max_cot_tokens=1, max_answer_tokens=1),
                 generator=torch.Generator().manual_seed(2))
    h = ro.cot_inputs[:, 0]
    R = (h @ w > 0).float()
    model.zero_grad()
    terms = Scorer(model)(ro)
    ((R - R.mean()) * terms["cot"]).mean().backward()     # a constant baseline keeps it unbiased
    est = E.grad.clone()
    model.zero_grad()
    # Closed form from the same mean, recomputed differentiably through the prompt pass.
    enc = tok(["Q: 1+2\nA:"], return_tensors="pt")
    logits = model(**enc).logits[0, -1]
    mu = mix(logits[None], E, CoTMode("soft").temperature)[0]
    sigma = noise_sigma(CoTMode("soft"), E)
    std_normal = torch.distributions.Normal(0.0, 1.0)
    std_normal.cdf(mu @ w / (sigma * w.norm())).backward()
    exact = E.grad.clone()
    cos = torch.nn.functional.cosine_similarity(est.flatten(), exact.flatten(), dim=0)
    print(f"cosine {cos:.3f}, norm ratio {float(est.norm() / exact.norm()):.3f}")
    assert cos > 0.9, f"cosine {cos:.3f}"
    assert 0.7 < float(est.norm() / exact.norm()) < 1.3


def test_rloo_advantages_sum_to_zero_per_group():
    rewards = [100.0, 10.0, 0.0, 0.0, 10.0, 10.0, 100.0, 0.0]
    a = rloo_advantages(rewards, 4)
    torch.testing.assert_close(a.view(2, 4).sum(1), torch.zeros(2))
    assert a[0] == pytest.approx(100 - 10 / 3)


def test_rloo_excludes_none_rewards():
    a = rloo_advantages([100.0, None, 0.0, 10.0], 4)
    assert a[1] == 0
    assert a[0] == pytest.approx(100 - 5) and a[2] == pytest.approx(0 - 55)
    assert float(a.sum()) == pytest.approx(0.0)
    assert rloo_advantages([None, 5.0], 2).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_equal_rewards_give_no_gradient(kind):
    model, tok = make_tiny("llama", seed=7)
    ro = rollout(model, tok, ["a", "a", "b", "b"], CoTMode(kind), RolloutConfig(max_cot_tokens=5),
                 generator=torch.Generator().manual_seed(0))
    adv = rloo_advantages([10.0, 10.0, 0.0, 0.0], 2)
    policy_loss(Scorer(model)(ro), adv, 4).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_rollout_record_is_readable_and_consistent():
    model, tok = make_tiny("llama", seed=8)
    ro = rollout(model, tok, PROMPTS, CoTMode("soft"), RolloutConfig(max_cot_tokens=10, record_entropy=True),
                 generator=torch.Generator().manual_seed(0))
    assert ro.cot_inputs.shape == (len(PROMPTS), int(ro.cot_len.max()), model.config.hidden_size)
    assert ro.entropy.shape == (len(PROMPTS), int(ro.cot_len.max()))
    for i in range(len(PROMPTS)):
        assert ro.cot_len[i] == len(ro.cot_ids[i])
        assert ro.answer_len[i] == len(ro.answer_ids[i])
        assert ro.completions[i].startswith(ro.cot_text[i])
        assert ro.prefill_text[i] in (RolloutConfig().prefill_after_budget, RolloutConfig().prefill_after_marker)


def test_marker_stops_the_cot_and_selects_the_short_prefill():
    model, tok = make_tiny("llama", seed=9)
    # With a one-character marker that the model emits, rows stop early and get " \\boxed{".
    ro = rollout(model, tok, PROMPTS * 4, CoTMode("hard"), RolloutConfig(max_cot_tokens=40, marker="e"),
                 generator=torch.Generator().manual_seed(0))
    stopped = [i for i, m in enumerate(ro.stopped_by_marker) if m]
    assert stopped, "no row met the marker"
    for i in stopped:
        assert ro.cot_text[i].rstrip().endswith("e") and ro.prefill_text[i] == " \\boxed{"
    for i, m in enumerate(ro.stopped_by_marker):
        if not m and tok.eos_token_id not in ro.cot_ids[i]:
            assert len(ro.cot_ids[i]) == 40 and ro.prefill_text[i] == " The final answer is: \\boxed{"


def test_answer_stops_when_the_box_closes():
    model, tok = make_tiny("llama", seed=10)
    # Make '}' the certain next token through a hook on the head: every answer is exactly '}'.
    close = tok.convert_tokens_to_ids("}")
    hook = model.lm_head.register_forward_hook(lambda m, i, o: o.index_fill(-1, torch.tensor([close]), 1e4))
    ro = rollout(model, tok, PROMPTS, CoTMode("hard"), RolloutConfig(max_cot_tokens=3, answer_temperature=1.0),
                 generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert all(a == [close] for a in ro.answer_ids)
    assert all(c.endswith("\\boxed{}") for c in ro.completions)
