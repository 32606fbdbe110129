"""Multiple-choice scoring by log-likelihood, as lm-eval-harness does it: accuracy, acc_norm, and the NLL of
the right answer. softcot.ood runs it over several models and benchmarks; the toy pre-training uses it for
its out-of-domain check.

Each choice is scored by the log-likelihood of its continuation " " + choice given the context of its
source (softcot.prompt.context_template: "Question: {question}\nAnswer:" for ARC and MMLU, the context itself
for HellaSwag, the toy prompt for the toy family). The continuation's tokens are the difference between the
tokenisations of context + continuation and of the context alone (lm-eval's `_encode_pair`; trailing spaces
of the context move to the continuation), and its log-likelihood is the exact sum of log-softmax over them.
"""
from __future__ import annotations

import torch

from softcot.modeling import decoder_of, lm_logits
from softcot.progress import Progress
from softcot.prompt import build_prompt, context_template


def encode_pair(tok, context: str, continuation: str, add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) the lm-eval way: the continuation is whole minus context."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=add_special_tokens)
    ctx = tok.encode(context, add_special_tokens=add_special_tokens)
    cont = whole[len(ctx):]
    ctx = whole[:len(ctx)]
    if not cont:
        raise ValueError(f"continuation {continuation!r} encodes to no tokens after context {context[-40:]!r}")
    if not ctx:  # nothing to condition on: start from BOS (or EOS), as lm-eval does
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ctx = [start]
    return ctx, cont


@torch.no_grad()
def loglikelihoods(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 16, pad_id: int = 0,
                   progress: bool = False, desc: str = "loglik") -> list[tuple[float, int]]:
    """(sum of log p(continuation token | prefix), number of continuation tokens) per (context, continuation).

    Batches are right-padded (causal attention never looks at the padding that follows a real token) and
    sorted by length; the LM head runs on the continuation positions only, in fp32.
    """
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    out: list = [None] * len(pairs)
    body, device = decoder_of(model), model.device
    bar = Progress(len(pairs), desc, unit="choice", enabled=progress)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        seqs = [(pairs[i][0] + pairs[i][1])[:-1] for i in idx]     # inputs; the last token is never an input
        T = max(len(x) for x in seqs)
        ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        rows, cols, tgts = [], [], []
        for b, (i, x) in enumerate(zip(idx, seqs)):
            ids[b, :len(x)] = torch.tensor(x)
            mask[b, :len(x)] = 1
            ctx, cont = pairs[i]
            start = len(ctx) - 1                                    # position that predicts cont[0]
            rows += [b] * len(cont)
            cols += list(range(start, start + len(cont)))
            tgts += cont
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        r, c = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        logp = torch.log_softmax(lm_logits(model, hidden[r, c]), dim=-1)
        tok_lp = logp.gather(-1, torch.tensor(tgts, device=device)[:, None]).squeeze(-1).double().cpu()
        k = 0
        for i in idx:
            n = len(pairs[i][1])
            out[i] = (float(tok_lp[k:k + n].sum()), n)
            k += n
        bar.update(len(idx))
    bar.close()
    return out


def score_choices(model, tok, records: list[dict], template: str | None = None, batch_size: int = 16,
                  add_special_tokens: bool = True, progress: bool = False, desc: str = "choices") -> dict:
    """acc, acc_norm, nll (mean per-token NLL of the right answer) and n over multiple-choice records;
    `items` holds each record's per-choice log-likelihoods."""
    pairs, owner, nbytes = [], [], []
    for j, r in enumerate(records):
        context = build_prompt(r["question"], context_template(r.get("source"), template))
        for c in r["choices"]:
            pairs.append(encode_pair(tok, context, " " + c, add_special_tokens))
            owner.append(j)
            nbytes.append(len((" " + c).encode("utf-8")))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ll = loglikelihoods(model, pairs, batch_size, pad, progress, desc)
    acc = acc_norm = nll = 0.0
    items, k = [], 0
    for r in records:
        n = len(r["choices"])
        s = [ll[k + i][0] for i in range(n)]
        norm = [ll[k + i][0] / nbytes[k + i] for i in range(n)]
        lab = r["label"]
        pred, pred_norm = max(range(n), key=s.__getitem__), max(range(n), key=norm.__getitem__)
        acc += pred == lab
        acc_norm += pred_norm == lab
        nll += -s[lab] / ll[k + lab][1]
        items.append({"id": r.get("id"), "label": lab, "pred": pred, "pred_norm": pred_norm, "loglik": s,
                      "n_tokens": [ll[k + i][1] for i in range(n)]})
        k += n
    m = max(1, len(records))
    return {"acc": acc / m, "acc_norm": acc_norm / m, "nll": nll / m, "n": len(records), "items": items}
