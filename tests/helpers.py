"""Shared builders for the tests: a char tokenizer, tiny models saved to disk, toy records, toy rewards."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from softcot.chartok import build_char_tokenizer
from softcot.modeling import tiny_model

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PROMPTS = ["Q: 1+2\nA:", "Q: 3+4-5+6\nA:", "hi", "Q: 9-1+1+1+1+1+1\nA:"]   # left padding differs per row

# A CoT that never meets its marker and an answer that starts right after '|': the learning tests' reward
# reads the sampled answer characters, which depend on the CoT inputs through attention.
PARITY_ROLLOUT = dict(max_cot_tokens=4, max_answer_tokens=2, marker="|||", prefill_after_marker="|",
                      prefill_after_budget="|")


def char_tokenizer():
    return build_char_tokenizer()


def make_tiny(arch: str = "llama", seed: int = 0, hidden: int = 32, tok=None):
    tok = tok or char_tokenizer()
    m = tiny_model(arch, vocab_size=len(tok), hidden=hidden, seed=seed)
    for cfg in (m.config, m.generation_config):
        cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id = tok.pad_token_id, tok.eos_token_id, tok.bos_token_id
    return m, tok


def save_tiny(path: Path, arch: str = "llama", seed: int = 0) -> Path:
    m, tok = make_tiny(arch, seed)
    m.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def write_records(path: Path, n: int = 20) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "question": f"{i}+1", "answer": str(i + 1)}) + "\n")
    return path


def parity_reward(prompts, completions, **_):
    """100 x the fraction of answer characters (after the last '|') whose code point is even."""
    out = []
    for c in completions:
        a = c.split("|")[-1]
        out.append(100.0 * sum(ord(ch) % 2 == 0 for ch in a) / max(1, len(a)) if a else 0.0)
    return out


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
