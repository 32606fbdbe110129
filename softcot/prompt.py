"""The zero-shot prompt of the paper (method.md §4), the same for every model.

A chat template around it is OPEN in the paper; it is a per-model option (`model.chat_template`).
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


def resolve_template(template: str) -> str:
    """'paper' / 'toy' aliases, or a template string containing {question}."""
    return TEMPLATES.get(template, template)


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
