"""Answer a few questions under several inference settings, showing each chain of thought.

    softcot generate --model smollm2 "Natalia sold 48 clips in April and half as many in May. How many in total?"
    softcot generate --model results/pretrain/base --template toy --settings hard_greedy,soft_greedy "7+5-3+2"

For soft and fuzzy settings the CoT text is the greedy shadow (the argmax token of each step's mixture),
which is what the marker search reads; the model itself was fed the continuous mixtures. Answers are greedy.
"""
from __future__ import annotations

import argparse
import sys

import torch

from softcot.config import ConfigError
from softcot.modeling import ModelConfig, load_model, model_fields
from softcot.prompt import TEMPLATES, build_prompt, resolve_template
from softcot.rewards import extract_boxed
from softcot.rollout import rollout
from softcot.schema import ALL_SETTINGS, DEFAULT_GAMMA, SETTINGS, CoTMode, RolloutConfig


def generate(model, tok, questions: list[str], settings: list[str], template: str, rcfg: RolloutConfig,
             seed: int = 0, chat_template: bool = False, add_special_tokens: bool = True,
             gamma: float = DEFAULT_GAMMA) -> list[dict]:
    """One dict per (question, setting): question, setting, cot, answer, boxed, cot_len, stopped_by_marker."""
    prompts = [build_prompt(q, template, tok, chat_template) for q in questions]
    out = []
    for setting in settings:
        g = torch.Generator(device=model.device).manual_seed(seed)
        ro = rollout(model, tok, prompts, CoTMode.from_setting(setting, gamma=gamma), rcfg, generator=g,
                     add_special_tokens=add_special_tokens)
        for b, q in enumerate(questions):
            comp = ro.completions[b]
            out.append({"question": q, "setting": setting, "cot": ro.cot_text[b],
                        "answer": ro.prefill_text[b] + ro.answer_text[b], "boxed": extract_boxed(comp),
                        "cot_len": int(ro.cot_len[b]), "stopped_by_marker": bool(ro.stopped_by_marker[b])})
    return out


def format_generations(rows: list[dict]) -> str:
    lines = []
    for q in dict.fromkeys(r["question"] for r in rows):          # questions in order, each once
        lines += ["", "=" * 100, f"QUESTION: {q}", "=" * 100]
        for r in (r for r in rows if r["question"] == q):
            lines += _format_one(r)
    return "\n".join(lines).lstrip("\n")


def _format_one(r: dict) -> list[str]:
    how = "stopped at the marker" if r["stopped_by_marker"] else "hit the budget / EOS"
    shadow = " (greedy shadow)" if not r["setting"].startswith("hard") else ""
    return [f"--- {r['setting']}: {r['cot_len']} CoT tokens, {how}",
            f"CoT{shadow}: {r['cot'].strip()}",
            f"answer: {r['answer'].strip()}",
            f"boxed: {r['boxed']}"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory, hub id, or 'smollm2'")
    ap.add_argument("--gguf", help="GGUF file inside --model")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated inference settings, of "
                    + ",".join(ALL_SETTINGS))
    ap.add_argument("--template", default="paper", help="paper | toy | a string containing {question}")
    ap.add_argument("--max-cot-tokens", type=int, default=256)
    ap.add_argument("--gamma", type=float, default=DEFAULT_GAMMA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chat-template", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    ap.add_argument("--threads", type=int)
    ap.add_argument("questions", nargs="+")
    args = ap.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in settings if s not in ALL_SETTINGS]
    if bad or not settings:
        raise ConfigError(f"--settings: unknown {bad}; allowed: {', '.join(ALL_SETTINGS)}")
    template = resolve_template(args.template)
    if "{question}" not in template:
        raise ConfigError(f"--template: must contain {{question}} or be one of {' | '.join(TEMPLATES)}")
    cfg = ModelConfig(**model_fields(args.model, args.gguf), chat_template=args.chat_template)
    cfg.validate("--model: ")
    rcfg = RolloutConfig(max_cot_tokens=args.max_cot_tokens, answer_temperature=0.0)
    rcfg.validate("--max-cot-tokens ")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(cfg)
    rows = generate(model, tok, args.questions, settings, template, rcfg, seed=args.seed,
                    chat_template=cfg.chat_template, add_special_tokens=cfg.add_special_tokens, gamma=args.gamma)
    print(format_generations(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
