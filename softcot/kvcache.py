"""Incremental decoding for rollouts: a KV cache and attention mask allocated once, and row compaction.

`Decoder` runs one forward per rollout step over a batch of B rows that share the same slots (see
softcot.rollout for the layout), and returns the fp32 logits of the newest slot. With `capacity` set, the
cache's full-attention layers are `GrowLayer`s and the mask is one (B, capacity) buffer, both filled in
place, so no step concatenates the growing cache or mask (transformers' DynamicLayer concatenates at every
step). With `capacity=None` it uses a plain DynamicCache (same results; the tests' reference).

Compaction (`compact=True`, the default; needs `capacity`): once a fifth of the computed rows have ended their
CoT, the live rows move to the front of the cache and mask and later steps compute only those;
`restore_order` puts every row back in prompt order for the answer phase. The caller's bookkeeping stays in
prompt order and every random draw is keyed by the row (softcot.rng), so compaction changes no draw: the
rollout equals the uncompacted one up to float rounding (a matmul over fewer rows may round differently,
~1e-7, which in soft mode can grow over a long CoT into another token in about 1 row in 20,000;
bench/bench_compact.py counts them). It saves a quarter to a third of a 256-512-row CPU rollout.
"""
from __future__ import annotations

import contextlib

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from softcot.modeling import cache_kwarg, decoder_of, lm_logits

COMPACT_AT = 0.8      # compaction: reorder once the live rows are at most this fraction of the computed ones
DECODE_ATTENTION = "softcot_decode"


def decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Attention of one new slot per row over the cache, as two matmuls around a masked softmax.

    On the CPU, PyTorch's SDPA takes its slow general path for a single query with a boolean mask (about twice
    the time of this, measured in docs/performance.md); anything else (several queries, no mask) goes to
    transformers' own SDPA function unchanged. Equal to SDPA up to float rounding."""
    if query.shape[2] != 1 or attention_mask is None or attention_mask.dtype != torch.bool or dropout:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:                                       # grouped-query attention: kv head h serves n_rep heads
        key, value = key.repeat_interleave(n_rep, 1), value.repeat_interleave(n_rep, 1)
    scores = torch.matmul(query, key.transpose(-1, -2)) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    probs = torch.softmax(scores.masked_fill(~attention_mask, float("-inf")), dim=-1)
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous(), None


AttentionInterface.register(DECODE_ATTENTION, decode_attention)
AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)


@contextlib.contextmanager
def _decode_attention(model):
    """Use `decode_attention` for the rollout's forwards of an SDPA model on the CPU; restore it after."""
    config = model.config
    if model.device.type != "cpu" or config._attn_implementation != "sdpa":
        yield
        return
    config._attn_implementation = DECODE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


class GrowLayer(DynamicLayer):
    """A DynamicLayer whose keys and values live in buffers allocated once for `capacity` positions: `update`
    writes the new states in place and returns views of the filled part.

    Compaction: a step may run on the first `rows` rows of the buffers only (the live rows, see `reorder`);
    the other rows' slots of that step stay zero and are masked. The buffers start at zero, so a masked slot
    never holds a NaN that attention weights of 0 could still spread."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.rows: int | None = None       # None: every row

    def lazy_initialization(self, key_states, value_states) -> None:
        b, h, _, dk = key_states.shape
        dv = value_states.shape[-1]
        self.device = key_states.device
        self._k = key_states.new_zeros((b, h, self.capacity, dk))
        self._v = value_states.new_zeros((b, h, self.capacity, dv))
        self.keys, self.values = self._k[:, :, :0], self._v[:, :, :0]
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n0, n1 = self.length, self.length + key_states.shape[-2]
        if n1 > self.capacity:
            raise RuntimeError(f"rollout KV cache overflow: {n1} > {self.capacity} positions")
        r = self._k.shape[0] if self.rows is None else self.rows
        self._k[:r, :, n0:n1] = key_states
        self._v[:r, :, n0:n1] = value_states
        self.length = n1
        self.keys, self.values = self._k[:r, :, :n1], self._v[:r, :, :n1]
        return self.keys, self.values

    def reorder(self, order: torch.Tensor) -> None:
        """Permute the first len(order) rows (row i <- row order[i]) over the filled slots."""
        n, L = len(order), self.length
        self._k[:n, :, :L] = self._k[order, :, :L]
        self._v[:n, :, :L] = self._v[order, :, :L]

    def get_seq_length(self) -> int:
        return self.length


def preallocated_cache(config, capacity: int) -> DynamicCache:
    """A DynamicCache whose full-attention layers are `GrowLayer`s (sliding-window layers are kept as is)."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class Decoder:
    """One KV cache and attention mask for B rows; `forward` feeds the next slot(s) of every working row."""

    def __init__(self, model, batch: int, mask_dtype: torch.dtype, capacity: int | None = None,
                 compact: bool = False):
        self.model, self.body = model, decoder_of(model)
        self.cache_key = cache_kwarg(self.body)
        device = model.device
        self.preallocate = capacity is not None
        if self.preallocate:
            self.cache = preallocated_cache(model.config, capacity)
            self.mask = torch.zeros((batch, capacity), dtype=mask_dtype, device=device)
        else:
            self.cache = DynamicCache(config=model.config)
            self.mask = torch.zeros((batch, 0), dtype=mask_dtype, device=device)
        self.filled = 0
        self.batch = batch
        # Compaction: the model computes only the first n_work rows of the cache and mask, which hold every
        # live row; phys[i] is the prompt row stored in row i.
        self.compact = self.preallocate and compact and all(isinstance(x, GrowLayer) for x in self.cache.layers)
        self.phys = torch.arange(batch, device=device)
        self.n_work = batch

    def forward(self, embeds: torch.Tensor, new_mask: torch.Tensor, new_pos: torch.Tensor) -> torch.Tensor:
        """One forward over the working rows, in cache (physical) row order: (n, k, d) inputs -> (n, V) logits."""
        n = new_mask.shape[1]
        if self.preallocate:
            self.mask[:self.n_work, self.filled:self.filled + n] = new_mask
            attn = self.mask[:self.n_work, :self.filled + n]
        else:
            self.mask = attn = torch.cat([self.mask, new_mask], dim=1)
        self.filled += n
        with _decode_attention(self.model):
            out = self.body(inputs_embeds=embeds, attention_mask=attn, position_ids=new_pos, use_cache=True,
                            **{self.cache_key: self.cache})
        return lm_logits(self.model, out.last_hidden_state[:, -1])

    def step(self, emb: torch.Tensor, new_mask: torch.Tensor, new_pos: torch.Tensor, logits: torch.Tensor,
             keep_old: bool = False) -> torch.Tensor:
        """A CoT step for prompt-ordered (B, d) inputs; returns prompt-ordered (B, V) logits. Rows outside the
        working set keep their last logits (they have ended; `keep_old` leaves the passed tensor untouched)."""
        if self.n_work == self.batch:
            return self.forward(emb[:, None, :], new_mask, new_pos)
        w = self.phys[:self.n_work]
        if keep_old:
            logits = logits.clone()
        logits[w] = self.forward(emb[w][:, None, :], new_mask[w], new_pos[w])
        return logits

    def maybe_compact(self, active: torch.Tensor) -> None:
        """Move the live rows to the front once few enough are left (a few cheap reorders per rollout)."""
        n_live = int(active.sum())
        if self.compact and n_live < self.n_work and n_live <= COMPACT_AT * self.n_work:
            live = active[self.phys[:self.n_work]]
            self._reorder(torch.cat([live.nonzero()[:, 0], (~live).nonzero()[:, 0]]), n_live)

    def restore_order(self) -> None:
        """Every row back in prompt order, all of them computed (the answer phase)."""
        if self.n_work < self.batch or not torch.equal(self.phys, torch.arange(self.batch, device=self.phys.device)):
            self._reorder(torch.argsort(self.phys), None)

    def _reorder(self, order: torch.Tensor, rows: int | None) -> None:
        """Cache and mask rows i <- order[i] (for i < len(order)); then compute `rows` rows (None: all)."""
        for layer in self.cache.layers:
            layer.reorder(order)
            layer.rows = rows
        n = len(order)
        self.mask[:n, :self.filled] = self.mask[order, :self.filled]
        self.phys[:n] = self.phys[order]
        self.n_work = self.batch if rows is None else rows
