"""The training objective: teacher-forced rescoring, exact densities, RLOO.

For each rollout g, l_g = sum_t log pi(input_t | prefix) + sum_j log pi(a_j | prefix):
  * soft/fuzzy CoT steps: the Gaussian log-density of the stored noisy input h_t around the mean
    p_{t-1} E that one teacher-forced pass recomputes differentiably,
        log N(h_t; p_{t-1} E, sigma^2 I) = -||h_t - p_{t-1} E||^2 / (2 sigma^2) + const,
    where the dropped constant is -d/2 log(2 pi sigma^2) (sigma is fixed, so it carries no gradient);
  * hard CoT steps and answer tokens: token log-probabilities at the sampling temperature;
  * multiplex CoT steps (an option beyond the paper): the sum of the K drawn tokens' log-probabilities
    (softcot.multiplex); gumbel CoT steps: the Concrete log-density of the stored y (softcot.gumbel). Both
    rebuild their inputs from the stored draws and E in the teacher-forced pass, with E's gradient path, as
    hard steps do.
Advantages are leave-one-out (RLOO): A_g = r_g - mean_{j != g} r_j, constants.
Loss = -(1 / (B G)) sum_g A_g l_g. No KL, no ratio clipping, no std or length normalisation by default.

`Scorer` is an nn.Module so that, wrapped by accelerate/DDP, its forward drives gradient synchronisation.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from softcot import gumbel, multiplex
from softcot.distributed import is_fsdp
from softcot.modeling import decoder_of, lm_logits, synced_clock
from softcot.modes import mix, mix_rows
from softcot.rollout import Rollout


def previous_real_slot(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, S) -> for each slot, the index of the nearest earlier slot with mask 1 (-1 if none).

    The logits that drew slot s came from that slot's forward, which holes (masked slots) may separate.
    """
    B, S = attention_mask.shape
    idx = torch.arange(S, device=attention_mask.device).expand(B, S)
    real = torch.where(attention_mask.bool(), idx, torch.full_like(idx, -1))
    upto = real.cummax(dim=1).values                                    # last real slot <= s
    return torch.cat([torch.full_like(upto[:, :1], -1), upto[:, :-1]], dim=1)


def gaussian_logdensity(h: torch.Tensor, mean: torch.Tensor, sigma: float, keep_const: bool = False) -> torch.Tensor:
    """sum over d of log N(h; mean, sigma^2): (N, d) -> (N,). The constant is dropped unless keep_const."""
    d = h.shape[-1]
    out = -(h - mean).pow(2).sum(-1) / (2 * sigma ** 2)
    if keep_const:
        out = out - 0.5 * d * math.log(2 * math.pi * sigma ** 2)
    return out


def rloo_advantages(rewards: list[float | None], group_size: int) -> torch.Tensor:
    """Leave-one-out advantages per group of `group_size` consecutive rollouts.

    A reward of None means "no reward": that rollout gets advantage 0 and is left out of its group's
    baseline. A group with fewer than two rewarded rollouts contributes nothing.
    """
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out = torch.zeros(len(rewards), dtype=torch.float64)
    for start in range(0, len(rewards), group_size):
        group = rewards[start:start + group_size]
        valid = [i for i, r in enumerate(group) if r is not None]
        if len(valid) < 2:
            continue
        total = sum(group[i] for i in valid)
        for i in valid:
            out[start + i] = group[i] - (total - group[i]) / (len(valid) - 1)
    return out.float()


class Scorer(nn.Module):
    """Teacher-forced rescoring of stored rollouts: returns per-rollout log-prob terms.

    forward(ro) -> {"cot": (B,), "answer": (B,)} with
        cot    = sum over CoT steps of the mode's log-density (Gaussian, token, multiplex or Concrete)
        answer = sum of answer-token log-probs
    `chunk` bounds how many scored positions go through the LM head at once (memory: chunk x V).
    """

    def __init__(self, model: nn.Module, chunk: int = 4096, checkpoint_head: bool = False):
        super().__init__()
        self.model = model
        self.chunk = chunk
        self.checkpoint_head = checkpoint_head

    def hidden_states(self, ro: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states of one teacher-forced pass over the rollout's real slots, packed: (B, S', d) with
        S' the longest row's number of real slots, and (B, S) the packed column of every real slot.

        The holes a row leaves after its CoT or answer ended are dropped and the real slots moved together
        (left-padded), with their own position ids, so each row attends to exactly the tokens it attended to
        in the rollout, and the pass costs the real tokens only."""
        E = self.model.get_input_embeddings().weight
        embeds = E[ro.input_ids]                                        # token slots keep their gradient path
        if ro.cot_inputs is not None:
            Lc = ro.cot_inputs.shape[1]
            sl = slice(ro.cot_start, ro.cot_start + Lc)
            soft = ro.cot_mask[:, sl, None]
            # The noisy inputs are fixed data: the density's gradient flows through the mean only.
            embeds = embeds.clone()
            embeds[:, sl] = torch.where(soft, ro.cot_inputs.to(E.dtype), embeds[:, sl])
        if ro.cot_tokens is not None:
            Lc = ro.cot_tokens.shape[1]
            sl = slice(ro.cot_start, ro.cot_start + Lc)
            # The draws are data; the inputs are rebuilt from them and E (E keeps its gradient path).
            mixed = mix_rows(E, ro.cot_tokens, draw_weights(ro)).to(E.dtype)
            embeds = embeds.clone()
            embeds[:, sl] = torch.where(ro.cot_mask[:, sl, None], mixed, embeds[:, sl])
        real = ro.attention_mask.bool()
        n = real.sum(1)
        width = int(n.max())
        col = (width - n)[:, None] + real.long().cumsum(1) - 1          # packed column of each real slot
        b, s = real.nonzero(as_tuple=True)
        c = col[b, s]
        packed = embeds.new_zeros((embeds.shape[0], width, embeds.shape[2])).index_put((b, c), embeds[b, s])
        mask = ro.attention_mask.new_zeros((embeds.shape[0], width)).index_put((b, c), ro.attention_mask[b, s])
        pos = ro.position_ids.new_zeros((embeds.shape[0], width)).index_put((b, c), ro.position_ids[b, s])
        out = decoder_of(self.model)(inputs_embeds=packed, attention_mask=mask, position_ids=pos, use_cache=False)
        return out.last_hidden_state, col

    def _head(self, hid: torch.Tensor) -> torch.Tensor:
        return lm_logits(self.model, hid)

    def scored_logits(self, ro: Rollout) -> torch.Tensor:
        """(B, S, V) logits at every scored slot (zeros elsewhere), as the rollout drew them. Tests only."""
        hidden, col = self.hidden_states(ro)
        prev = previous_real_slot(ro.attention_mask)
        scored = ro.cot_mask | ro.answer_mask
        b, s = scored.nonzero(as_tuple=True)
        logits = self._head(hidden[b, col[b, prev[b, s]]])
        full = torch.zeros((*scored.shape, logits.shape[-1]), device=logits.device)
        full[b, s] = logits
        return full

    def forward(self, ro: Rollout) -> dict[str, torch.Tensor]:
        hidden, col = self.hidden_states(ro)
        prev = previous_real_slot(ro.attention_mask)
        B = hidden.shape[0]
        E = self.model.get_input_embeddings().weight
        terms = {}
        for name, mask in (("cot", ro.cot_mask), ("answer", ro.answer_mask)):
            b, s = mask.nonzero(as_tuple=True)
            total = hidden.new_zeros(B, dtype=torch.float32)
            if len(b) == 0:
                terms[name] = total
                continue
            src = hidden[b, col[b, prev[b, s]]]                         # (N, d) predictor states
            if name == "cot" and ro.mode.gaussian:
                h = ro.cot_inputs[b, s - ro.cot_start]                 # (N, d) fp32, fixed
                vals = self._chunked(src, lambda z, i: gaussian_logdensity(
                    h[i], mix(z, E, ro.mode.temperature), ro.sigma))
            elif name == "cot" and ro.mode.kind == "multiplex":
                ids = ro.cot_tokens[b, s - ro.cot_start]               # (N, K)
                gate = None if ro.cot_gate is None else ro.cot_gate[b, s - ro.cot_start]
                vals = self._chunked(src, lambda z, i: multiplex.log_prob(
                    z, ids[i], None if gate is None else gate[i], ro.mode.temperature))
            elif name == "cot" and ro.mode.kind == "gumbel":
                ids, logy = ro.cot_tokens[b, s - ro.cot_start], ro.cot_logy[b, s - ro.cot_start]   # (N, k)
                vals = self._chunked(src, lambda z, i: gumbel.log_density(
                    gumbel.log_pi(z.gather(-1, ids[i]), ro.mode.temperature), logy[i], ro.mode.gumbel_lambda))
            else:
                temp = ro.mode.temperature if name == "cot" else (ro.answer_temperature or 1.0)
                tgt = ro.input_ids[b, s]
                vals = self._chunked(src, lambda z, i: torch.log_softmax(z / temp, -1).gather(
                    -1, tgt[i, None]).squeeze(-1))
            terms[name] = total.index_add(0, b, vals)
        return terms

    def _chunked(self, src: torch.Tensor, fn) -> torch.Tensor:
        outs = []
        for start in range(0, src.shape[0], self.chunk):
            i = torch.arange(start, min(start + self.chunk, src.shape[0]), device=src.device)
            part = lambda x, i=i: fn(self._head(x), i)  # noqa: E731
            if self.checkpoint_head and torch.is_grad_enabled():
                outs.append(torch.utils.checkpoint.checkpoint(part, src[i], use_reentrant=False))
            else:
                outs.append(part(src[i]))
        return torch.cat(outs)


def draw_weights(ro: Rollout) -> torch.Tensor:
    """(B, Lc, K) fp32 weights of the stored multiplex / gumbel draws in each CoT input, as the rollout used."""
    if ro.mode.kind == "gumbel":
        return ro.cot_logy.exp()
    return multiplex.weights(ro.cot_tokens.shape[-1], ro.cot_gate, ro.cot_tokens.shape[:2], ro.cot_tokens.device)


def policy_loss(terms: dict[str, torch.Tensor], advantages: torch.Tensor, total_rollouts: int,
                cot_weight: float = 1.0) -> torch.Tensor:
    """-(1 / (B G)) sum_g A_g (cot_weight * l_cot + l_answer); `total_rollouts` = B G over all processes.

    cot_weight = 1 is the paper's estimator; other values are an option beyond the paper.
    """
    l = cot_weight * terms["cot"] + terms["answer"]
    return -(advantages.to(l.device) * l).sum() / total_rollouts


def microbatches(rollouts: list[Rollout], advantages: torch.Tensor, size: int):
    """(rows of one rollout batch, their advantages) in chunks of at most `size` rows. Within a batch the rows
    go by their number of real slots, so that each chunk's packed pass (Scorer.hidden_states) has little
    padding; the loss is a sum over rows, so the order changes only float rounding."""
    offset = 0
    for ro in rollouts:
        order = torch.argsort(ro.attention_mask.sum(1), stable=True).tolist()
        for s in range(0, len(ro), size):
            rows = order[s:s + size]
            yield ro.select(rows), advantages[[offset + r for r in rows]]
        offset += len(ro)


def backward_microbatches(scorer, rollouts: list[Rollout], advantages: torch.Tensor, size: int, loss_fn,
                          acc=None, scale: float = 1.0) -> dict:
    """Rescore `rollouts` teacher-forced in micro-batches and backpropagate `loss_fn(terms, adv) * scale`.

    With an accelerate `acc`, forwards run under its autocast, backwards go through it, and gradients are
    synchronised across processes on the last micro-batch only. Returns the summed terms and loss (floats)
    and the seconds spent in forwards and backwards."""
    chunks = list(microbatches(rollouts, advantages, size))
    stats = {"cot": 0.0, "answer": 0.0, "loss": 0.0, "forward_s": 0.0, "backward_s": 0.0}
    for i, (sub, adv) in enumerate(chunks):
        last = i == len(chunks) - 1
        # No no_sync under FSDP: it would hold unsharded gradients; each micro-batch reduce-scatters instead.
        accumulate = acc is not None and not last and acc.num_processes > 1 and not is_fsdp(acc)
        sync = acc.no_sync(scorer) if accumulate else contextlib.nullcontext()
        with sync:
            ta = _now(acc)
            with (acc.autocast() if acc is not None else contextlib.nullcontext()):
                terms = scorer(sub)
                loss = loss_fn(terms, adv) * scale
            tb = _now(acc)
            if acc is not None:
                acc.backward(loss)
            else:
                loss.backward()
            stats["backward_s"] += _now(acc) - tb
            stats["forward_s"] += tb - ta
        stats["cot"] += float(terms["cot"].detach().sum())
        stats["answer"] += float(terms["answer"].detach().sum())
        stats["loss"] += float(loss.detach()) / scale
    return stats



def _now(acc) -> float:
    return synced_clock(acc.device if acc is not None else None)
