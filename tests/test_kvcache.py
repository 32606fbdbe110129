"""softcot.kvcache: the preallocated KV cache and mask, and row compaction, against transformers'
DynamicCache (directly, and through whole rollouts)."""
from __future__ import annotations

import pytest
import torch

from softcot import kvcache as K
from softcot.kvcache import Decoder, GrowLayer
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig
from tests.helpers import PROMPTS, make_tiny

ARCHS = ["llama", "qwen2"]


def test_grow_layer_returns_what_was_written_and_refuses_to_overflow():
    torch.manual_seed(0)
    layer = GrowLayer(capacity=5)
    k1, v1 = torch.randn(2, 3, 3, 4), torch.randn(2, 3, 3, 6)
    k2, v2 = torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 6)
    keys, values = layer.update(k1, v1)
    assert torch.equal(keys, k1) and torch.equal(values, v1) and layer.get_seq_length() == 3
    keys, values = layer.update(k2, v2)
    assert torch.equal(keys, torch.cat([k1, k2], 2)) and torch.equal(values, torch.cat([v1, v2], 2))
    assert layer.get_seq_length() == 5
    with pytest.raises(RuntimeError, match="overflow"):
        layer.update(k2[:, :, :1], v2[:, :, :1])


def test_grow_layer_reorder_moves_row_order_i_to_row_i():
    torch.manual_seed(1)
    layer = GrowLayer(capacity=4)
    k, v = torch.randn(4, 2, 3, 5), torch.randn(4, 2, 3, 5)
    layer.update(k, v)
    order = torch.tensor([2, 0, 3])                  # the first three rows; row 3 keeps its own content
    layer.reorder(order)
    layer.rows = 3
    keys, values = layer.update(torch.zeros(3, 2, 1, 5), torch.zeros(3, 2, 1, 5))
    assert keys.shape == (3, 2, 4, 5)
    assert torch.equal(keys[:, :, :3], k[order]) and torch.equal(values[:, :, :3], v[order])
    assert not keys[:, :, 3].any()


def test_decoder_compaction_then_restore_order_gives_the_uncompacted_logits():
    """Rows that ended leave the computed batch once few enough are live (COMPACT_AT); the live rows' logits
    stay those of an uncompacted DynamicCache decoder, and restore_order puts every row, its mask and its
    cache back in prompt order for a final step over all rows."""
    model, tok = make_tiny("llama", seed=5)
    E = model.get_input_embeddings().weight
    B, P, steps = 6, 3, 4
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, len(tok), (B, P), generator=g)
    mask, pos = torch.ones(B, P, dtype=torch.long), torch.arange(P).expand(B, P)
    ref = Decoder(model, B, mask.dtype, capacity=None)
    dec = Decoder(model, B, mask.dtype, capacity=P + steps + 1, compact=True)
    with torch.no_grad():
        torch.testing.assert_close(dec.forward(E[ids], mask, pos), ref.forward(E[ids], mask, pos))
        dec.maybe_compact(torch.tensor([True, True, True, True, True, False]))   # 5 of 6 live: > COMPACT_AT
        assert dec.n_work == B and dec.phys.tolist() == list(range(B))
        active = torch.tensor([True, False, True, False, False, True])
        dec.maybe_compact(active)
        assert dec.n_work == 3 and sorted(dec.phys[:3].tolist()) == [0, 2, 5]
        last, logits = pos[:, -1].clone(), torch.zeros(B, E.shape[0])
        for _ in range(steps):
            emb = E[torch.randint(4, len(tok), (B,), generator=g)]
            new_mask = active.long()[:, None]
            last = last + active.long()
            want = ref.forward(emb[:, None], new_mask, last[:, None])
            logits = dec.step(emb, new_mask, last[:, None], logits, keep_old=True)
            torch.testing.assert_close(logits[active], want[active], atol=1e-5, rtol=1e-5)
        dec.restore_order()
        assert dec.n_work == B and dec.phys.tolist() == list(range(B))
        assert torch.equal(dec.mask[:, :dec.filled], ref.mask)
        emb = E[torch.randint(4, len(tok), (B,), generator=g)]
        one = torch.ones(B, 1, dtype=torch.long)
        torch.testing.assert_close(dec.forward(emb[:, None], one, last[:, None] + 1),
                                   ref.forward(emb[:, None], one, last[:, None] + 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_preallocated_and_compacted_cache_equal_dynamic_cache(arch, kind, monkeypatch):
    """The in-place cache and mask, with and without compaction (rows whose CoT ended leave the computed
    batch), give what transformers' DynamicCache gives: same tokens, masks, positions, CoT inputs and
    entropies, and the same logits (within float tolerance) wherever a slot is scored, on a left-padded batch
    whose rows end at different steps. The random stream is shared, so sampled modes must agree too."""
    model, tok = make_tiny(arch, seed=4)
    reorders = []
    grow_reorder = K.GrowLayer.reorder
    monkeypatch.setattr(K.GrowLayer, "reorder", lambda self, order: (reorders.append(len(order)),
                                                                      grow_reorder(self, order)))
    monkeypatch.setattr(K, "COMPACT_AT", 0.99)     # compact whenever a row ends: as many reorders as possible
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
