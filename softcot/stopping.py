"""When a chain of thought and an answer end: the marker search and the brace depth, per token id.

The CoT ends when its text ends with the marker ("The final answer is:"): the sampled text (hard) or the
greedy shadow (soft/fuzzy). Only rows whose newest token contains the marker's last character decode a short
tail, so no sequence is decoded whole at any step. The answer ends when its braces close the `\\boxed{`
prefill; the brace balance of every token id is looked up in a table built once per tokenizer.
"""
from __future__ import annotations

import torch


class VocabTables:
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
    def get(cls, tokenizer, vocab_size: int, marker: str, device) -> "VocabTables":
        key = (id(tokenizer), vocab_size, marker, str(device))
        if key not in cls._cache:
            cls._cache[key] = cls(tokenizer, vocab_size, marker, device)
        return cls._cache[key]


def ends_with_marker(tokenizer, ids: list[int], marker: str) -> bool:
    """Does the text of `ids` end with `marker` (trailing whitespace ignored)? Decodes a short tail only.

    A tail of len(marker) tokens covers the marker when no whitespace follows it, since every token holds at
    least one character; the tail grows while its stripped text is shorter than the marker."""
    n = len(marker)
    while True:
        tail = tokenizer.decode(ids[-n:], skip_special_tokens=False).rstrip()
        if len(tail) >= len(marker) or n >= len(ids):
            return tail.endswith(marker)
        n *= 2


def eos_ids(tokenizer, model) -> set[int]:
    """Every token id that ends a sequence: the tokenizer's EOS and the model's generation-config EOS ids."""
    return set(_as_list(tokenizer.eos_token_id)) | set(_as_list(model.generation_config.eos_token_id))


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
