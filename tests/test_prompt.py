"""softcot.prompt: prompt templates and aliases, and the context template of each multiple-choice source."""
from __future__ import annotations

import pytest

from softcot.chartok import build_char_tokenizer
from softcot.prompt import (CONTEXTS, DEFAULT_CONTEXT, MARKER, PAPER_PROMPT, TEMPLATES, TOY_PROMPT, TOY_SEQ_SOURCE,
                            build_prompt, context_template, resolve_template)


def test_context_template_per_source_and_override():
    assert context_template("arc") == context_template("mmlu") == DEFAULT_CONTEXT == "Question: {question}\nAnswer:"
    assert context_template(None) == DEFAULT_CONTEXT
    assert context_template("hellaswag") == "{question}" == CONTEXTS["hellaswag"]
    assert context_template(TOY_SEQ_SOURCE) == TOY_PROMPT == "Q: {question}\nA:"
    assert context_template("arc", "Q: {question}\nA:") == "Q: {question}\nA:"
    assert context_template("hellaswag", "") == ""                   # an override wins even when empty


def test_build_prompt_fills_only_the_question_placeholder():
    assert build_prompt("7+5", "x {question} \\boxed{} {other} y") == "x 7+5 \\boxed{} {other} y"
    assert build_prompt("7+5", "toy") == "Q: 7+5\nA:"
    assert build_prompt("Q?") == PAPER_PROMPT.replace("{question}", "Q?")
    assert PAPER_PROMPT.endswith("User: {question} Assistant:") and MARKER in PAPER_PROMPT
    with pytest.raises(ValueError, match="placeholder"):
        build_prompt("q", "no placeholder")


def test_template_aliases():
    assert resolve_template("paper") == PAPER_PROMPT and resolve_template("toy") == TOY_PROMPT
    assert resolve_template("A {question}") == "A {question}"
    assert set(TEMPLATES) == {"paper", "toy"}


def test_chat_template_needs_a_tokenizer_that_has_one():
    with pytest.raises(ValueError, match="chat_template"):
        build_prompt("q", "toy", tokenizer=build_char_tokenizer(), chat_template=True)
    tok = build_char_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    assert build_prompt("1+1", "toy", tokenizer=tok, chat_template=True) == "<user>Q: 1+1\nA:<assistant>"
