"""Prompt and context templates: the paper's zero-shot prompt, the embedded default's short one,
the CoT marker, and the context template of each multiple-choice source.

A chat template around the prompt is left open by the paper; it is a per-model option (`model.chat_template`).
"""
from __future__ import annotations

PAPER_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first shows the complete reasoning process step by step, then provides the final answer "
    "in \\boxed{}. The assistant must always follow the format: 'User: [question] Assistant: [detailed "
    "reasoning] The final answer is: \\boxed{[answer]}.' User: {question} Assistant:"
)
TOY_PROMPT = "Q: {question}\nA:"     # the embedded default's short prompt (a char model can't afford 400 chars)
TEMPLATES = {"paper": PAPER_PROMPT, "toy": TOY_PROMPT}

MARKER = "The final answer is:"      # ends the CoT (the paper uses no special end-of-thinking token)

# Multiple-choice scoring: the context each source's question is put in (lm-eval-harness conventions).
TOY_SEQ_SOURCE = "toy_seq"           # the embedded default's out-of-domain family (softcot.toy)
DEFAULT_CONTEXT = "Question: {question}\nAnswer:"
CONTEXTS = {"hellaswag": "{question}", TOY_SEQ_SOURCE: TOY_PROMPT}


def resolve_template(template: str) -> str:
    """'paper' / 'toy' aliases, or a template string containing {question}."""
    return TEMPLATES.get(template, template)


def context_template(source: str | None, override: str | None = None) -> str:
    """The context template of a multiple-choice record's source (`override`, if given, wins)."""
    return override if override is not None else CONTEXTS.get(source or "", DEFAULT_CONTEXT)


def build_prompt(question: str, template: str = PAPER_PROMPT, tokenizer=None, chat_template: bool = False) -> str:
    """Fill `{question}` (the template's only placeholder; other braces are literal) and optionally wrap it."""
    template = resolve_template(template)
    if "{question}" not in template:
        raise ValueError("prompt template must contain the placeholder {question}")
    text = template.replace("{question}", question)
    if chat_template:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat_template: true, but the tokenizer has no chat template; set model.chat_template: false")
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text
