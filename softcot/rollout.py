"""Batched, KV-cached rollouts of a chain of thought (any CoTMode kind) followed by a discrete answer.

    keys = rng.row_keys(seed, step, prompt_index, sample_index)      # (B,) per-row random streams
    ro = rollout(model, tok, prompts, CoTMode("soft"), RolloutConfig(max_cot_tokens=128), keys=keys)
    ro.cot_text[i], ro.answer_text[i], ro.completions[i]      # what a person reads
    ro.input_ids, ro.attention_mask, ro.position_ids, ...     # what the teacher-forced loss needs

Slot layout (every row has the same S slots; a slot is one model input position):

    [0, P)              the prompt, left-padded
    [P, P + Lc)         CoT steps; a row that ended its CoT early has masked "holes" afterwards
    [A0 - W, A0)        the answer prefill, right-aligned, holes on its left
    [A0, S)             answer tokens, holes after the row's answer ended

Holes carry attention_mask 0 and are skipped by position_ids, so each row sees exactly its own
contiguous sequence; the teacher-forced pass replays the same layout, masks and positions.

`rollout()` drives named phases over one `_State`: prefill the prompts, CoT steps (the next input of each
row, then the end detection of softcot.stopping), the answer prefill, the answer steps, and the assembly of
the `Rollout` record. The KV cache, the mask and the optional row compaction are softcot.kvcache's.

Ending the CoT: the marker is searched in the sampled text (hard, and multiplex with K = 1, which is hard
mode) or in the greedy shadow (soft, fuzzy, multiplex with K > 1, gumbel: the argmax of each step's p). An
EOS inside the CoT ends it like the budget does. After the marker the prefill
is `prefill_after_marker` (" \\boxed{"), after the budget or an EOS it is `prefill_after_budget`
(" The final answer is: \\boxed{"). The answer ends when its braces close the box, at EOS, or after
`max_answer_tokens`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from softcot import gumbel, multiplex, rng
from softcot.kvcache import Decoder
from softcot.modes import mix, mix_rows, noise_sigma
from softcot.schema import CoTMode, RolloutConfig
from softcot.stopping import VocabTables, ends_with_marker, eos_ids


@dataclass
class Rollout:
    """One batch of rollouts. Tensors are on the model's device; (B, S) unless noted."""
    input_ids: torch.Tensor          # token id of each token slot (pad at holes and at non-hard CoT slots)
    attention_mask: torch.Tensor     # 1 real slot, 0 padding / hole
    position_ids: torch.Tensor
    cot_mask: torch.Tensor           # bool, scored CoT steps
    answer_mask: torch.Tensor        # bool, scored answer tokens
    cot_inputs: torch.Tensor | None  # (B, Lc, d) fp32 noisy inputs h_t of soft/fuzzy CoT steps (else None)
    cot_start: int
    mode: CoTMode
    sigma: float
    answer_temperature: float
    prompt_text: list[str]
    cot_ids: list[list[int]]         # sampled (hard) or greedy-shadow CoT tokens (see the module docstring)
    answer_ids: list[list[int]]
    prefill_ids: list[list[int]]
    cot_text: list[str]
    prefill_text: list[str]
    answer_text: list[str]
    stopped_by_marker: list[bool]
    entropy: torch.Tensor | None = None      # (B, Lc) fp32, NaN where the row's CoT had ended
    logits: torch.Tensor | None = None       # (B, S, V) logits that drew each scored slot (tests only)
    cot_tokens: torch.Tensor | None = None   # (B, Lc, K) multiplex draws / gumbel top-k ids (pad after the CoT)
    cot_gate: torch.Tensor | None = None     # (B, Lc) bool: multiplex steps that mix all K (None: every step)
    cot_logy: torch.Tensor | None = None     # (B, Lc, k) fp32 gumbel log y (0 after the CoT)
    extras: dict = field(default_factory=dict)

    @property
    def completions(self) -> list[str]:
        """CoT + prefill + answer: the text a reward function judges."""
        return [c + p + a for c, p, a in zip(self.cot_text, self.prefill_text, self.answer_text)]

    @property
    def completion_ids(self) -> list[list[int]]:
        """CoT (greedy shadow for soft/fuzzy) + prefill + answer token ids, as a TRL reward receives them."""
        return [c + p + a for c, p, a in zip(self.cot_ids, self.prefill_ids, self.answer_ids)]

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
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v[t]
            elif isinstance(v, list):
                v = [v[i] for i in idx]
            elif f.name == "extras":
                v = {}
            out[f.name] = v
        return Rollout(**out)


def _sample(logits: torch.Tensor, temperature: float, greedy: bool, draws: rng.Draws, stream: int,
            t: int) -> torch.Tensor:
    """Argmax, or a draw from softmax(logits / temperature) by the rows' counter-based streams."""
    if greedy or temperature == 0:
        return logits.argmax(-1)
    return rng.categorical(torch.softmax(logits / temperature, dim=-1), draws, stream, t)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


# --------------------------------------------------------------------------- state

@dataclass
class _Context:
    """What stays fixed during one rollout."""
    model: object
    tokenizer: object
    mode: CoTMode
    cfg: RolloutConfig
    keys: torch.Tensor                   # (B,) int64 counter-based stream keys of the rows (softcot.rng)
    E: torch.Tensor                      # (V, d) input embeddings
    E_mix: torch.Tensor | None           # fp32 E for the soft mixture (one copy per rollout; soft/fuzzy only)
    tables: VocabTables
    eos_ids: set[int]
    sigma: float
    prefills: dict[str, list[int]]
    draws: rng.Draws | None = None     # the rows' random numbers by step (built from keys, a block at a time)

    def __post_init__(self):
        self.draws = rng.Draws(self.keys)

    @property
    def device(self):
        return self.E.device

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


@dataclass
class _State:
    """What one rollout accumulates: the slot columns, flags, per-row CoT bookkeeping, the decoder."""
    dec: Decoder
    logits: torch.Tensor                 # (B, V) logits of each row's newest slot
    last_pos: torch.Tensor               # (B,) position of each row's newest real slot
    P: int
    cols_ids: list = field(default_factory=list)
    cols_mask: list = field(default_factory=list)
    cols_pos: list = field(default_factory=list)
    cot_flags: list = field(default_factory=list)
    ans_flags: list = field(default_factory=list)
    answer_cols: list = field(default_factory=list)
    cot_inputs: list = field(default_factory=list)
    cot_tokens: list = field(default_factory=list)     # multiplex / gumbel: (B, K) ids per step
    cot_aux: list = field(default_factory=list)        # multiplex: (B,) gate or None; gumbel: (B, k) log y
    entropies: list = field(default_factory=list)
    trace: list | None = None            # the logits that drew each scored slot (return_logits)
    active: list[bool] = field(default_factory=list)
    active_t: torch.Tensor | None = None
    by_marker: list[bool] = field(default_factory=list)
    cot_ids: list[list[int]] = field(default_factory=list)
    prefill_text: list[str] = field(default_factory=list)
    prefill_width: int = 0
    t: int = 0                           # CoT steps taken

    @property
    def batch(self) -> int:
        return len(self.active)

    def add_column(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> None:
        self.cols_ids.append(ids)
        self.cols_mask.append(mask)
        self.cols_pos.append(pos)


# --------------------------------------------------------------------------- the rollout

@torch.no_grad()
def rollout(model, tokenizer, prompts: list[str], mode: CoTMode, cfg: RolloutConfig | None = None,
            generator: torch.Generator | None = None, add_special_tokens: bool = True,
            return_logits: bool = False, keys: torch.Tensor | None = None) -> Rollout:
    """Roll out `prompts` (one row each). Every random draw of row i (a hard CoT token, a noise vector, a sampled
    answer token) is a function of `keys[i]` and the position alone (softcot.rng), so a row's rollout does not
    depend on the other rows. `keys`: (B,) int64 from `rng.row_keys`; without them row i gets
    `row_keys(seed, 0, i, 0)`, the seed drawn once from `generator` (or 0 without one)."""
    cfg = cfg or RolloutConfig()
    E = model.get_input_embeddings().weight
    if keys is None:
        seed = 0 if generator is None else int(torch.randint(0, 2**31, (1,), generator=generator,
                                                               device=generator.device))
        keys = rng.row_keys(seed, 0, torch.arange(len(prompts)), torch.zeros(len(prompts), dtype=torch.long))
    if len(keys) != len(prompts):
        raise ValueError(f"{len(keys)} stream keys for {len(prompts)} prompts")
    ctx = _Context(model=model, tokenizer=tokenizer, mode=mode, cfg=cfg, keys=keys.to(model.device), E=E,
                   E_mix=E.float() if mode.gaussian else None,
                   tables=VocabTables.get(tokenizer, E.shape[0], cfg.marker, model.device),
                   eos_ids=eos_ids(tokenizer, model), sigma=noise_sigma(mode, E),
                   prefills={s: tokenizer.encode(s, add_special_tokens=False)
                             for s in (cfg.prefill_after_marker, cfg.prefill_after_budget)})
    st = _prefill_prompts(ctx, prompts, add_special_tokens, return_logits)
    for _ in range(cfg.max_cot_tokens):
        if not _cot_step(ctx, st):
            break
    st.dec.restore_order()                   # back to prompt order for the answer phase
    _answer_prefill(ctx, st)
    _answer_steps(ctx, st)
    return _assemble(ctx, st, prompts)


def _prefill_prompts(ctx: _Context, prompts: list[str], add_special_tokens: bool, return_logits: bool) -> _State:
    """Left-pad and encode the prompts, allocate the decoder, and run the prompt forward."""
    tok, cfg, device = ctx.tokenizer, ctx.cfg, ctx.device
    side = tok.padding_side
    tok.padding_side = "left"
    enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    tok.padding_side = side
    ids = enc["input_ids"].to(device)
    mask = enc["attention_mask"].to(device)
    P, B = ids.shape[1], len(prompts)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    # Every slot the rollout can use, allocated once: no step concatenates the growing cache or mask.
    capacity = (P + cfg.max_cot_tokens + max(len(v) for v in ctx.prefills.values()) + cfg.max_answer_tokens
                if cfg.preallocate else None)
    dec = Decoder(ctx.model, B, mask.dtype, capacity, cfg.compact)
    st = _State(dec=dec, logits=dec.forward(ctx.E[ids], mask, pos), last_pos=pos[:, -1].clone(), P=P,
                trace=[] if return_logits else None, active=[True] * B,
                active_t=torch.ones(B, dtype=torch.bool, device=device), by_marker=[False] * B,
                cot_ids=[[] for _ in range(B)])
    st.add_column(ids, mask, pos)
    return st


def _next_cot_input(ctx: _Context, st: _State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, d) next inputs, (B,) token column and (B,) token ids read for the marker (sampled or shadow)."""
    logits, mode = st.logits, ctx.mode
    if ctx.cfg.record_entropy:
        ent = _entropy(logits)
        st.entropies.append(torch.where(st.active_t, ent, torch.full_like(ent, float("nan"))))
    if mode.gaussian:
        h = mix(logits, ctx.E_mix, mode.temperature)
        if ctx.sigma > 0:
            h = h + ctx.sigma * rng.normal(ctx.draws, rng.STREAM_NOISE, st.t, h.shape[-1], dtype=h.dtype)
        shadow = logits.argmax(-1)
        emb = h.to(ctx.E.dtype)
        st.cot_inputs.append(torch.where(st.active_t[:, None], h, torch.zeros_like(h)))
        tok_col = torch.full_like(shadow, ctx.pad_id)
    elif mode.kind in ("multiplex", "gumbel"):
        if mode.kind == "multiplex":
            ids, w, aux = multiplex.draw(logits, mode, ctx.draws, st.t)
            shadow = ids[:, 0] if mode.multiplex_k == 1 else logits.argmax(-1)
        else:
            ids, aux = gumbel.draw(logits, mode, ctx.draws, st.t)
            w, shadow = aux.exp(), ids[:, 0]
        emb = mix_rows(ctx.E, ids, w).to(ctx.E.dtype)
        st.cot_tokens.append(ids)
        st.cot_aux.append(aux)
        tok_col = torch.full_like(shadow, ctx.pad_id)
    else:
        shadow = _sample(logits, mode.temperature, mode.greedy, ctx.draws, rng.STREAM_COT, st.t)
        emb = ctx.E[shadow]
        tok_col = shadow
    if st.trace is not None:
        st.trace.append(logits)
    return emb, tok_col, shadow


def _cot_step(ctx: _Context, st: _State) -> bool:
    """One CoT step for every row (ended rows get a masked hole); False once no row is left in its CoT."""
    emb, tok_col, shadow = _next_cot_input(ctx, st)
    act = st.active_t
    emb = torch.where(act[:, None], emb, ctx.E[ctx.pad_id])
    tok_col = torch.where(act, tok_col, torch.full_like(tok_col, ctx.pad_id))
    new_mask = act.long()[:, None]
    st.last_pos = st.last_pos + act.long()
    new_pos = st.last_pos[:, None]
    st.add_column(tok_col[:, None], new_mask, new_pos)
    st.cot_flags.append(act.clone())
    st.t += 1
    _detect_end(ctx, st, shadow)
    st.logits = st.dec.step(emb, new_mask, new_pos, st.logits, keep_old=st.trace is not None)
    st.active_t = torch.tensor(st.active, device=ctx.device)
    if not any(st.active):
        return False
    st.dec.maybe_compact(st.active_t)
    return True


def _detect_end(ctx: _Context, st: _State, shadow: torch.Tensor) -> None:
    """Append each live row's token; end the rows that produced an EOS or completed the marker."""
    shadow_l = shadow.tolist()
    for b in range(st.batch):
        if not st.active[b]:
            continue
        x = shadow_l[b]
        st.cot_ids[b].append(x)
        if x in ctx.eos_ids:
            st.active[b] = False
        elif ctx.tables.may_end_marker[x] and ends_with_marker(ctx.tokenizer, st.cot_ids[b], ctx.cfg.marker):
            st.active[b], st.by_marker[b] = False, True


def _answer_prefill(ctx: _Context, st: _State) -> None:
    """The prefill after the marker or the budget, right-aligned so that every row's last prefill slot is
    the same column."""
    cfg, B, device = ctx.cfg, st.batch, ctx.device
    st.prefill_text = [cfg.prefill_after_marker if m else cfg.prefill_after_budget for m in st.by_marker]
    pre = [ctx.prefills[s] for s in st.prefill_text]
    W = st.prefill_width = max(len(p) for p in pre)
    pre_ids = torch.full((B, W), ctx.pad_id, dtype=torch.long, device=device)
    pre_mask = torch.zeros((B, W), dtype=torch.long, device=device)
    for b, p in enumerate(pre):
        if p:
            pre_ids[b, W - len(p):] = torch.tensor(p, device=device)
            pre_mask[b, W - len(p):] = 1
    pre_pos = st.last_pos[:, None] + pre_mask.cumsum(-1)
    st.last_pos = pre_pos[:, -1].clone()
    st.add_column(pre_ids, pre_mask, pre_pos)
    st.logits = st.dec.forward(ctx.E[pre_ids], pre_mask, pre_pos)


def _answer_steps(ctx: _Context, st: _State) -> None:
    """Discrete answer tokens until the box closes, EOS, or the answer budget."""
    cfg, B, device = ctx.cfg, st.batch, ctx.device
    depth = torch.ones(B, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    eos_t = torch.tensor(sorted(ctx.eos_ids), device=device) if ctx.eos_ids else None
    for j in range(cfg.max_answer_tokens):
        a = _sample(st.logits, cfg.answer_temperature, False, ctx.draws, rng.STREAM_ANSWER, j)
        live = ~done
        if st.trace is not None:
            st.trace.append(st.logits)
        tok_col = torch.where(live, a, torch.full_like(a, ctx.pad_id))
        st.last_pos = st.last_pos + live.long()
        st.add_column(tok_col[:, None], live.long()[:, None], st.last_pos[:, None])
        st.ans_flags.append(live.clone())
        st.answer_cols.append(tok_col)
        depth = depth + torch.where(live, ctx.tables.brace_delta[a], torch.zeros_like(depth))
        ended = depth <= 0
        if eos_t is not None:
            ended |= torch.isin(a, eos_t)
        done = done | (live & ended)
        if bool(done.all()) or j == cfg.max_answer_tokens - 1:
            break
        st.logits = st.dec.forward(ctx.E[tok_col][:, None, :], live.long()[:, None], st.last_pos[:, None])


def _assemble(ctx: _Context, st: _State, prompts: list[str]) -> Rollout:
    """The `Rollout` record: slot tensors, scored-slot masks, texts, and the traced logits if asked for."""
    B, P, Lc, device = st.batch, st.P, len(st.cot_flags), ctx.device
    input_ids = torch.cat(st.cols_ids, 1)
    S = input_ids.shape[1]
    cot_mask = torch.zeros((B, S), dtype=torch.bool, device=device)
    if Lc:
        cot_mask[:, P:P + Lc] = torch.stack(st.cot_flags, 1)
    answer_mask = torch.zeros_like(cot_mask)
    A0 = P + Lc + st.prefill_width
    answer_mask[:, A0:A0 + len(st.ans_flags)] = torch.stack(st.ans_flags, 1)
    ans_ids = [[] for _ in range(B)]
    if st.answer_cols:
        ans_mat = torch.stack(st.answer_cols, 1).tolist()
        flags = torch.stack(st.ans_flags, 1).tolist()
        ans_ids = [[x for x, f in zip(r, fr) if f] for r, fr in zip(ans_mat, flags)]
    logits_full = None
    if st.trace is not None:
        logits_full = torch.zeros((B, S, st.trace[0].shape[-1]), device=device)
        scored_cols = list(range(P, P + Lc)) + list(range(A0, A0 + len(st.ans_flags)))
        for col, lg in zip(scored_cols, st.trace):
            logits_full[:, col] = lg
    dec = lambda xs: ctx.tokenizer.decode(xs, skip_special_tokens=True)  # noqa: E731
    return Rollout(
        input_ids=input_ids, attention_mask=torch.cat(st.cols_mask, 1), position_ids=torch.cat(st.cols_pos, 1),
        cot_mask=cot_mask, answer_mask=answer_mask,
        cot_inputs=torch.stack(st.cot_inputs, 1) if (ctx.mode.gaussian and Lc) else None, cot_start=P,
        mode=ctx.mode, sigma=ctx.sigma, answer_temperature=ctx.cfg.answer_temperature, prompt_text=list(prompts),
        cot_ids=st.cot_ids, answer_ids=ans_ids, prefill_ids=[ctx.prefills[s] for s in st.prefill_text],
        cot_text=[dec(c) for c in st.cot_ids], prefill_text=st.prefill_text,
        answer_text=[dec(a) for a in ans_ids], stopped_by_marker=st.by_marker,
        entropy=torch.stack(st.entropies, 1) if st.entropies else None, logits=logits_full,
        **_cot_draws(ctx, st))


def _cot_draws(ctx: _Context, st: _State) -> dict:
    """The multiplex / gumbel per-step record, stacked once (B, Lc, ...) and blanked after each row's CoT."""
    if not st.cot_tokens:
        return {}
    live = torch.stack(st.cot_flags, 1)
    out = {"cot_tokens": torch.where(live[..., None], torch.stack(st.cot_tokens, 1), ctx.pad_id)}
    if ctx.mode.kind == "gumbel":
        out["cot_logy"] = torch.where(live[..., None], torch.stack(st.cot_aux, 1), 0.0)
    elif st.cot_aux[0] is not None:
        out["cot_gate"] = torch.stack(st.cot_aux, 1) & live
    return out
