"""Shared builders for the tests: a char tokenizer, tiny models saved to disk, toy records, toy rewards,
the tiny "answerer" checkpoint of the evaluation tests and the multiple-choice records of the scoring tests."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from softcot.chartok import build_char_tokenizer
from softcot.modeling import tiny_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
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


# --------------------------------------------------------------------------- training runs

def tiny_train_cfg(base: Path, out: Path, kind: str, **kw):
    """A TrainConfig over the tiny model and records in `base` (the `train_base` fixture), parity rollouts."""
    from softcot.modeling import ModelConfig
    from softcot.rollout import RolloutConfig
    from softcot.schema import CoTMode, DataConfig, OptimConfig, TrainConfig
    cfg = dict(model=ModelConfig(name_or_path=str(base / "model")), mode=CoTMode(kind),
               rollout=RolloutConfig(**PARITY_ROLLOUT),
               data=DataConfig(train=str(base / "train.jsonl"), prompt_template="Q: {question}\nA:"),
               optim=OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant"),
               steps=50, prompts_per_step=4, group_size=8, rollout_batch=32, micro_batch=16,
               output_dir=str(out), save_every=10, eval_every=1000, seed=0)
    cfg.update(kw)
    return TrainConfig(**cfg)


# --------------------------------------------------------------------------- the evaluation tests' answerer
# A 2-layer char-level Llama trained for a few seconds to answer every toy prompt with either
# " 3+4=7 The final answer is: \\boxed{7}" or " 3+5=8 ... \\boxed{8}" (about even odds), so sampled
# settings mix right and wrong answers and pass@k is not trivially flat.

ANSWERER_COMPLETIONS = (" 3+4=7 The final answer is: \\boxed{7}", " 3+5=8 The final answer is: \\boxed{8}")
ANSWERER_QUESTIONS = [("3+4", "7"), ("1+6", "7"), ("9-1", "8"), ("5+2", "7"), ("2+7", "9")]


def train_answerer(out: Path) -> Path:
    """Train and save (safetensors + char tokenizer) the answerer described above."""
    from softcot.toy import format_prompt
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    texts = [format_prompt(q) + c for q in ("3+4", "1+6", "9-2", "5+2") for c in ANSWERER_COMPLETIONS]
    ids = torch.tensor([tok.encode(t) + [tok.eos_token_id] for t in texts])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(100):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# --------------------------------------------------------------------------- multiple-choice records

MC_RECORDS = [
    {"id": "a", "question": "2,4,6,?", "choices": ["8", "9", "10", "7"], "label": 0, "source": "toy_seq"},
    {"id": "b", "question": "10,7,4,?", "choices": ["2", "1", "0"], "label": 1, "source": "toy_seq"},
    {"id": "c", "question": "Which gas do plants absorb?", "choices": ["carbon dioxide", "oxygen"], "label": 0,
     "source": "arc"},
    {"id": "d", "question": "A man is sitting on a roof. he", "choices": ["starts pulling up roofing.",
     "is ripping level tiles off.", "holds a rope."], "label": 0, "source": "hellaswag"},
]


def mc_random_model(tok):
    return tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=1)


def train_on_answers(tok, records, steps=80, seed=0):
    """A tiny model trained until the right continuations of `records` are near-certain."""
    from softcot.prompt import build_prompt, context_template
    model = tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=seed)
    texts = [build_prompt(r["question"], context_template(r["source"])) + " " + r["choices"][r["label"]]
             for r in records]
    enc = [tok.encode(t, add_special_tokens=False) + [tok.eos_token_id] for t in texts]
    T = max(map(len, enc))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(e)) + e for e in enc])
    labels = ids.masked_fill(ids == tok.pad_token_id, -100)
    mask = (ids != tok.pad_token_id).long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def card_table(card: str) -> dict[str, str]:
    """The `| key | value |` rows of a Markdown table, header and separator rows left out."""
    rows = {}
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 2 and not set(cells[1]) <= set("-:") and cells != ["setting", "value"]:
            rows[cells[0]] = cells[1]
    return rows


def write_train_yaml(base: Path, path: Path, out: Path, **kw) -> Path:
    """A `softcot train --config` file over the `train_base` fixture: 12 soft steps with the parity reward."""
    import yaml
    cfg = {"model": {"name_or_path": str(base / "model")}, "mode": {"kind": "soft"},
           "rollout": PARITY_ROLLOUT, "reward": "tests.helpers:parity_reward",
           "data": {"train": str(base / "train.jsonl"), "val": str(base / "val.jsonl"), "val_size": 4,
                    "prompt_template": "Q: {question}\nA:"},
           "optim": {"lr": 3e-3, "warmup_steps": 2}, "steps": 12, "prompts_per_step": 2, "group_size": 4,
           "rollout_batch": 8, "micro_batch": 4, "save_every": 1, "eval_every": 4, "output_dir": str(out),
           "threads": 1, "seed": 3}
    cfg.update(kw)
    path.write_text(yaml.safe_dump(cfg))
    return path
