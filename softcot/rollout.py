"""Batched, KV-cached rollouts of a chain of thought (hard, soft or fuzzy) followed by a discrete answer.

    ro = rollout(model, tok, prompts, CoTMode("soft"), RolloutConfig(max_cot_tokens=128), generator=g)
    ro.cot_text[i], ro.answer_text[i], ro.completions[i]      # what a person reads
    ro.input_ids, ro.attention_mask, ro.position_ids, ...     # what the teacher-forced loss needs

Slot layout (every row has the same S slots; a slot is one model input position):

    [0, P)              the prompt, left-padded
    [P, P + Lc)         CoT steps; a row that ended its CoT early has masked "holes" afterwards
    [A0 - W, A0)        the answer prefill (method.md §2), right-aligned, holes on its left
    [A0, S)             answer tokens, holes after the row's answer ended

Holes carry attention_mask 0 and are skipped by position_ids, so each row sees exactly its own
contiguous sequence; the teacher-forced pass replays the same layout, masks and positions.

Compaction (`RolloutConfig.compact`, off by default; needs `preallocate`): once a fifth of the computed rows
have ended their CoT, the live rows move to the front of the KV cache and mask and later steps compute only
those; the answer phase puts every row back in prompt order. The bookkeeping, the columns above and the
random draws (one per row per step, whatever the row holds) stay in prompt order, so the tokens are those of
the uncompacted rollout up to float rounding: a matmul over fewer rows may round differently (~1e-6), and
in soft mode such a difference can grow over a long CoT into another token (bench/bench_compact.py counts
the rows). It saves 10-20% of a 256-512-row CPU rollout; it is off so that results stay bit-reproducible.

Ending the CoT: the marker ("The final answer is:") is searched in the sampled text (hard) or in the
greedy shadow (soft/fuzzy: argmax of each step's p). Only rows whose newest token contains the marker's
last character decode a short tail, so no sequence is decoded whole at any step. An EOS inside the CoT
ends it like the budget does. After the marker the prefill is `prefill_after_marker` (" \\boxed{"),
after the budget or an EOS it is `prefill_after_budget` (" The final answer is: \\boxed{"). The answer
ends when its braces close the box, at EOS, or after `max_answer_tokens`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from softcot.config import require
from softcot.modes import CoTMode, mix, noise_sigma

MARKER = "The final answer is:"
COMPACT_AT = 0.8      # compaction: reorder once the live rows are at most this fraction of the computed ones


@dataclass
class RolloutConfig:
    max_cot_tokens: int = 128                  # L: 128 for GSM8K training, 512 for MATH and for evaluation
    max_answer_tokens: int = 32
    marker: str = MARKER
    prefill_after_marker: str = " \\boxed{"
    prefill_after_budget: str = " The final answer is: \\boxed{"
    answer_temperature: float = 1.0            # 0 = greedy. Training default 1.0 (OPEN in the paper), eval 0
    record_entropy: bool = False               # per-step entropy of the next-token distribution
    preallocate: bool = True                   # KV cache and mask allocated once for the longest rollout and
                                               # filled in place (false: plain DynamicCache, same results)
    compact: bool = False                      # with preallocate: rows whose CoT has ended leave the batch that
                                               # the model computes (speed; same random stream, but see below)

    def validate(self, prefix: str = "") -> None:
        require(self.max_cot_tokens >= 1, prefix + "max_cot_tokens", f"got {self.max_cot_tokens}; must be >= 1")
        require(self.max_answer_tokens >= 1, prefix + "max_answer_tokens",
                f"got {self.max_answer_tokens}; must be >= 1")
        require(bool(self.marker.strip()), prefix + "marker", "must be a non-empty string")
        require(self.answer_temperature >= 0, prefix + "answer_temperature",
                f"got {self.answer_temperature}; must be >= 0 (0 = greedy)")


@dataclass
class Rollout:
    """One batch of rollouts. Tensors are on the model's device; (B, S) unless noted."""
    input_ids: torch.Tensor          # token id of each token slot (pad at holes and at soft CoT slots)
    attention_mask: torch.Tensor     # 1 real slot, 0 padding / hole
    position_ids: torch.Tensor
    cot_mask: torch.Tensor           # bool, scored CoT steps
    answer_mask: torch.Tensor        # bool, scored answer tokens
    cot_inputs: torch.Tensor | None  # (B, Lc, d) fp32 noisy inputs h_t of soft/fuzzy CoT steps (None for hard)
    cot_start: int
    mode: CoTMode
    sigma: float
    answer_temperature: float
    prompt_text: list[str]
    cot_ids: list[list[int]]         # sampled (hard) or greedy-shadow (soft/fuzzy) CoT tokens
    answer_ids: list[list[int]]
    cot_text: list[str]
    prefill_text: list[str]
    answer_text: list[str]
    stopped_by_marker: list[bool]
    entropy: torch.Tensor | None = None      # (B, Lc) fp32, NaN where the row's CoT had ended
    logits: torch.Tensor | None = None       # (B, S, V) logits that drew each scored slot (tests only)
    extras: dict = field(default_factory=dict)

    @property
    def completions(self) -> list[str]:
        """CoT + prefill + answer: the text a reward function judges."""
        return [c + p + a for c, p, a in zip(self.cot_text, self.prefill_text, self.answer_text)]

    @property
    def cot_len(self) -> torch.Tensor:
        return self.cot_mask.sum(1)

    @property
    def answer_len(self) -> torch.Tensor:
        return self.answer_mask.sum(1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: list[int]) -> "Rollout":
        """The rows `idx` (micro-batching of the loss)."""
        t = torch.as_tensor(idx, device=self.input_ids.device)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Rollout(
            input_ids=self.input_ids[t], attention_mask=self.attention_mask[t], position_ids=self.position_ids[t],
            cot_mask=self.cot_mask[t], answer_mask=self.answer_mask[t],
            cot_inputs=None if self.cot_inputs is None else self.cot_inputs[t], cot_start=self.cot_start,
            mode=self.mode, sigma=self.sigma, answer_temperature=self.answer_temperature,
            prompt_text=pick(self.prompt_text), cot_ids=pick(self.cot_ids), answer_ids=pick(self.answer_ids),
            cot_text=pick(self.cot_text), prefill_text=pick(self.prefill_text), answer_text=pick(self.answer_text),
            stopped_by_marker=pick(self.stopped_by_marker),
            entropy=None if self.entropy is None else self.entropy[t],
            logits=None if self.logits is None else self.logits[t])


# --------------------------------------------------------------------------- model plumbing

def decoder_of(model):
    """The transformer body that maps inputs_embeds to hidden states (no LM head)."""
    return model.get_decoder()


def cache_kwarg(body) -> str:
    """transformers 5.x is renaming `past_key_values` to `cache`; use whichever this version takes."""
    import inspect
    params = inspect.signature(body.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from final hidden states, exactly as the model's own forward computes them, in fp32."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


class _GrowLayer(DynamicLayer):
    """A DynamicLayer whose keys and values live in buffers allocated once for `capacity` positions: `update`
    writes the new states in place and returns views of the filled part, so a step costs no concatenation
    of the whole cache (transformers' DynamicLayer concatenates at every step).

    Compaction: a step may run on the first `rows` rows of the buffers only (the rollout keeps its live rows
    there, see `reorder`); the other rows' slots of that step stay zero and are masked. The buffers start at
    zero, so a masked slot never holds a NaN that attention weights of 0 could still spread."""

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
    """A DynamicCache whose full-attention layers are `_GrowLayer`s (sliding-window layers are kept as is)."""
    cache = DynamicCache(config=config)
    cache.layers = [_GrowLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class _VocabTables:
    """Per-tokenizer lookup tables, built once: brace balance and 'may end the marker' per token id."""
    _cache: dict = {}

    def __init__(self, tokenizer, vocab_size: int, marker: str, device):
        toks = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        toks = [t or "" for t in toks] + [""] * max(0, vocab_size - len(toks))
        toks = toks[:vocab_size]
        last = marker.rstrip()[-1]
        # Byte-level BPE token strings keep ASCII punctuation as is, so counting braces on them is exact.
        self.brace_delta = torch.tensor([t.count("{") - t.count("}") for t in toks], device=device)
        self.may_end_marker = [last in t for t in toks]

    @classmethod
    def get(cls, tokenizer, vocab_size: int, marker: str, device):
        key = (id(tokenizer), vocab_size, marker, str(device))
        if key not in cls._cache:
            cls._cache[key] = cls(tokenizer, vocab_size, marker, device)
        return cls._cache[key]


def ends_with_marker(tokenizer, ids: list[int], marker: str) -> bool:
    """Does the text of `ids` end with `marker` (trailing whitespace ignored)? Decodes a short tail only.

    A tail of len(marker) tokens always covers the marker, since every token holds at least one character.
    """
    tail = tokenizer.decode(ids[-len(marker):], skip_special_tokens=False)
    return tail.rstrip().endswith(marker)


def _sample(logits: torch.Tensor, temperature: float, greedy: bool, generator) -> torch.Tensor:
    if greedy or temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


# --------------------------------------------------------------------------- the rollout

@torch.no_grad()
def rollout(model, tokenizer, prompts: list[str], mode: CoTMode, cfg: RolloutConfig | None = None,
            generator: torch.Generator | None = None, add_special_tokens: bool = True,
            return_logits: bool = False) -> Rollout:
    cfg = cfg or RolloutConfig()
    device = model.device
    E = model.get_input_embeddings().weight                       # (V, d)
    V, d = E.shape
    body = decoder_of(model)
    cache_key = cache_kwarg(body)
    tables = _VocabTables.get(tokenizer, V, cfg.marker, device)
    pad_id = tokenizer.pad_token_id
    eos_ids = set(_as_list(tokenizer.eos_token_id)) | set(_as_list(model.generation_config.eos_token_id))
    tau = mode.temperature
    sigma = noise_sigma(mode, E)
    B = len(prompts)

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    tokenizer.padding_side = side
    ids = enc["input_ids"].to(device)
    mask = enc["attention_mask"].to(device)
    P = ids.shape[1]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)

    cols_ids, cols_mask, cols_pos = [ids], [mask], [pos]
    cot_flags, ans_flags = [], []
    last_pos = pos[:, -1].clone()
    trace = [] if return_logits else None
    prefills = {s: tokenizer.encode(s, add_special_tokens=False)
                for s in (cfg.prefill_after_marker, cfg.prefill_after_budget)}
    if cfg.preallocate:
        # Every slot the rollout can use, allocated once: no step concatenates the growing cache or mask.
        S_max = P + cfg.max_cot_tokens + max(len(v) for v in prefills.values()) + cfg.max_answer_tokens
        cache = preallocated_cache(model.config, S_max)
        full_mask = torch.zeros((B, S_max), dtype=mask.dtype, device=device)
    else:
        cache = DynamicCache(config=model.config)
        full_mask = mask[:, :0]
    filled = 0
    # Compaction (CoT phase): the model computes only the first n_work rows of the cache and mask, which hold
    # every live row; phys[i] is the prompt row stored in row i. Bookkeeping stays in prompt order.
    compact = cfg.preallocate and cfg.compact and all(isinstance(layer, _GrowLayer) for layer in cache.layers)
    phys = torch.arange(B, device=device)
    n_work = B

    def step(embeds, new_mask, new_pos):
        """One forward over the working rows; inputs and returned logits are in cache (physical) row order."""
        nonlocal full_mask, filled
        n = new_mask.shape[1]
        if cfg.preallocate:
            full_mask[:n_work, filled:filled + n] = new_mask
            attn = full_mask[:n_work, :filled + n]
        else:
            full_mask = attn = torch.cat([full_mask, new_mask], dim=1)
        filled += n
        out = body(inputs_embeds=embeds, attention_mask=attn, position_ids=new_pos,
                   use_cache=True, **{cache_key: cache})
        return lm_logits(model, out.last_hidden_state[:, -1])

    def reorder(order: torch.Tensor, rows: int | None) -> None:
        """Cache and mask rows i <- order[i] (for i < len(order)); then compute `rows` rows (None: all)."""
        nonlocal n_work
        for layer in cache.layers:
            layer.reorder(order)
            layer.rows = rows
        n = len(order)
        full_mask[:n, :filled] = full_mask[order, :filled]
        phys[:n] = phys[order]
        n_work = B if rows is None else rows

    # Prefill the prompts.
    logits = step(E[ids], mask, pos)

    # ---- CoT phase
    active = [True] * B
    active_t = torch.ones(B, dtype=torch.bool, device=device)
    by_marker = [False] * B
    cot_ids: list[list[int]] = [[] for _ in range(B)]
    cot_inputs, entropies = [], []
    pad_emb = E[pad_id]
    E_mix = E.float() if mode.continuous else None      # one fp32 copy per rollout (a no-op for fp32 weights)
    for t in range(cfg.max_cot_tokens):
        if cfg.record_entropy:
            ent = _entropy(logits)
            entropies.append(torch.where(active_t, ent, torch.full_like(ent, float("nan"))))
        if mode.continuous:
            h = mix(logits, E_mix, tau)
            if sigma > 0:
                h = h + sigma * torch.randn(h.shape, generator=generator, device=device, dtype=h.dtype)
            shadow = logits.argmax(-1)
            emb = h.to(E.dtype)
            cot_inputs.append(torch.where(active_t[:, None], h, torch.zeros_like(h)))
            tok_col = torch.full_like(shadow, pad_id)
        else:
            shadow = _sample(logits, tau, mode.greedy, generator)
            emb = E[shadow]
            tok_col = shadow
        if trace is not None:
            trace.append(logits)
        emb = torch.where(active_t[:, None], emb, pad_emb)
        tok_col = torch.where(active_t, tok_col, torch.full_like(tok_col, pad_id))
        new_mask = active_t.long()[:, None]
        last_pos = last_pos + active_t.long()
        new_pos = last_pos[:, None]
        cols_ids.append(tok_col[:, None]); cols_mask.append(new_mask); cols_pos.append(new_pos)
        cot_flags.append(active_t.clone())

        shadow_l = shadow.tolist()
        for b in range(B):
            if not active[b]:
                continue
            x = shadow_l[b]
            cot_ids[b].append(x)
            if x in eos_ids:
                active[b] = False
            elif tables.may_end_marker[x] and ends_with_marker(tokenizer, cot_ids[b], cfg.marker):
                active[b], by_marker[b] = False, True
        if n_work == B:
            logits = step(emb[:, None, :], new_mask, new_pos)
        else:   # rows outside the working set keep their last logits: they are inactive, only sampled for the
            w = phys[:n_work]     # random stream (one draw per row per step, whatever the row holds)
            if trace is not None:
                logits = logits.clone()           # the trace keeps the previous step's tensor
            logits[w] = step(emb[w][:, None, :], new_mask[w], new_pos[w])
        active_t = torch.tensor(active, device=device)
        n_live = sum(active)
        if not n_live:
            break
        if compact and n_live < n_work and n_live <= COMPACT_AT * n_work:     # a few cheap reorders per rollout
            live = active_t[phys[:n_work]]
            reorder(torch.cat([live.nonzero()[:, 0], (~live).nonzero()[:, 0]]), n_live)
    Lc = len(cot_flags)
    if n_work < B or not torch.equal(phys, torch.arange(B, device=device)):
        reorder(torch.argsort(phys), None)            # back to prompt order for the answer phase

    # ---- answer prefill, right-aligned so that every row's last prefill slot is the same column
    prefill_text = [cfg.prefill_after_marker if m else cfg.prefill_after_budget for m in by_marker]
    pre = [prefills[s] for s in prefill_text]
    W = max(len(p) for p in pre)
    pre_ids = torch.full((B, W), pad_id, dtype=torch.long, device=device)
    pre_mask = torch.zeros((B, W), dtype=torch.long, device=device)
    for b, p in enumerate(pre):
        if p:
            pre_ids[b, W - len(p):] = torch.tensor(p, device=device)
            pre_mask[b, W - len(p):] = 1
    pre_pos = last_pos[:, None] + pre_mask.cumsum(-1)
    last_pos = pre_pos[:, -1].clone()
    cols_ids.append(pre_ids); cols_mask.append(pre_mask); cols_pos.append(pre_pos)
    logits = step(E[pre_ids], pre_mask, pre_pos)

    # ---- answer phase: discrete tokens until the box closes, EOS, or the answer budget
    depth = torch.ones(B, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    eos_t = torch.tensor(sorted(eos_ids), device=device) if eos_ids else None
    answer_cols = []
    for j in range(cfg.max_answer_tokens):
        a = _sample(logits, cfg.answer_temperature, False, generator)
        live = ~done
        if trace is not None:
            trace.append(logits)
        tok_col = torch.where(live, a, torch.full_like(a, pad_id))
        last_pos = last_pos + live.long()
        cols_ids.append(tok_col[:, None]); cols_mask.append(live.long()[:, None]); cols_pos.append(last_pos[:, None])
        ans_flags.append(live.clone())
        answer_cols.append(tok_col)
        depth = depth + torch.where(live, tables.brace_delta[a], torch.zeros_like(depth))
        ended = depth <= 0
        if eos_t is not None:
            ended |= torch.isin(a, eos_t)
        done = done | (live & ended)
        if bool(done.all()) or j == cfg.max_answer_tokens - 1:
            break
        logits = step(E[tok_col][:, None, :], live.long()[:, None], last_pos[:, None])

    input_ids = torch.cat(cols_ids, 1)
    attention_mask = torch.cat(cols_mask, 1)
    position_ids = torch.cat(cols_pos, 1)
    S = input_ids.shape[1]
    cot_mask = torch.zeros((B, S), dtype=torch.bool, device=device)
    if Lc:
        cot_mask[:, P:P + Lc] = torch.stack(cot_flags, 1)
    answer_mask = torch.zeros_like(cot_mask)
    A0 = P + Lc + W
    answer_mask[:, A0:A0 + len(ans_flags)] = torch.stack(ans_flags, 1)
    ans_ids = [[] for _ in range(B)]
    if answer_cols:
        ans_mat = torch.stack(answer_cols, 1).tolist()
        flags = torch.stack(ans_flags, 1).tolist()
        ans_ids = [[x for x, f in zip(r, fr) if f] for r, fr in zip(ans_mat, flags)]

    logits_full = None
    if trace is not None:
        logits_full = torch.zeros((B, S, trace[0].shape[-1]), device=device)
        scored_cols = list(range(P, P + Lc)) + list(range(A0, A0 + len(ans_flags)))
        for col, lg in zip(scored_cols, trace):
            logits_full[:, col] = lg

    dec = lambda xs: tokenizer.decode(xs, skip_special_tokens=True)  # noqa: E731
    return Rollout(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        cot_mask=cot_mask, answer_mask=answer_mask,
        cot_inputs=torch.stack(cot_inputs, 1) if (mode.continuous and Lc) else None, cot_start=P,
        mode=mode, sigma=sigma, answer_temperature=cfg.answer_temperature, prompt_text=list(prompts),
        cot_ids=cot_ids, answer_ids=ans_ids, cot_text=[dec(c) for c in cot_ids], prefill_text=prefill_text,
        answer_text=[dec(a) for a in ans_ids], stopped_by_marker=by_marker,
        entropy=torch.stack(entropies, 1) if entropies else None, logits=logits_full)


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
