"""softcot.stopping: the marker search and the per-token tables against decoding the whole text, on the char
tokenizer (with and without whole-word tokens) and on SmolLM2's byte-level BPE tokenizer."""
from __future__ import annotations


from softcot.chartok import build_char_tokenizer
from softcot.prompt import MARKER
from softcot.stopping import VocabTables, ends_with_marker, eos_ids
from softcot.toy import TOY_WORDS
from tests.helpers import make_tiny

TEXT = "48 / 2 = 24 clips in May. 48 + 24 = 72. The final answer is: \\boxed{72}"


def decoded_hits(tok, ids, marker):
    return [i for i in range(1, len(ids) + 1) if tok.decode(ids[:i]).rstrip().endswith(marker)]


def test_ends_with_marker_agrees_with_decoding_every_prefix_char_tokenizer():
    # (No whitespace token right after a marker here: that case has its own test below.)
    for tok in (build_char_tokenizer(), build_char_tokenizer(words=TOY_WORDS)):
        for text in (TEXT.replace(": ", ":"), "The final answer is:\\boxed{1} x The final answer is:",
                     "final answer is:", "The final answer is:The final answer is"):
            ids = tok.encode(text, add_special_tokens=False)
            hits = [i for i in range(1, len(ids) + 1) if ends_with_marker(tok, ids[:i], MARKER)]
            assert hits == decoded_hits(tok, ids, MARKER)
            assert len(hits) == text.count(MARKER)
    # The marker is one token in the word tokenizer: a tail of one token must be enough.
    words = build_char_tokenizer(words=TOY_WORDS)
    assert ends_with_marker(words, words.encode("x " + MARKER, add_special_tokens=False), MARKER)


def test_ends_with_marker_ignores_trailing_whitespace_tokens():
    tok = build_char_tokenizer()
    for tail in (" ", "  \n"):
        ids = tok.encode("x " + MARKER + tail, add_special_tokens=False)
        assert tok.decode(ids).rstrip().endswith(MARKER)
        assert ends_with_marker(tok, ids, MARKER)


def test_vocab_tables_count_braces_and_flag_tokens_that_may_end_the_marker():
    tok = build_char_tokenizer(words=TOY_WORDS)
    tables = VocabTables(tok, len(tok) + 3, "ends with z ", "cpu")     # 3 ids beyond the tokenizer: padding rows
    toks = tok.convert_ids_to_tokens(list(range(len(tok))))
    assert tables.brace_delta.tolist() == [t.count("{") - t.count("}") for t in toks] + [0, 0, 0]
    assert tables.brace_delta[tok.convert_tokens_to_ids("\\boxed{")] == 1
    assert tables.may_end_marker == ["z" in t for t in toks] + [False] * 3
    colon = VocabTables(tok, len(tok), MARKER, "cpu")
    assert colon.may_end_marker[tok.convert_tokens_to_ids(MARKER)]
    assert colon.may_end_marker[tok.convert_tokens_to_ids(":")]
    assert sum(colon.may_end_marker) == 2


def test_vocab_tables_are_built_once_per_tokenizer_and_marker():
    tok = build_char_tokenizer()
    a = VocabTables.get(tok, len(tok), MARKER, "cpu")
    assert VocabTables.get(tok, len(tok), MARKER, "cpu") is a
    assert VocabTables.get(tok, len(tok), "|||", "cpu") is not a


def test_eos_ids_join_the_tokenizer_and_generation_config_ids():
    model, tok = make_tiny("llama", seed=0)
    assert eos_ids(tok, model) == {tok.eos_token_id}
    model.generation_config.eos_token_id = [tok.eos_token_id, 7, 9]
    assert eos_ids(tok, model) == {tok.eos_token_id, 7, 9}
    model.generation_config.eos_token_id = None
    assert eos_ids(tok, model) == {tok.eos_token_id}


def test_smollm2_marker_detected_with_bpe_tokenizer(smollm2):
    _, model, tok = smollm2
    ids = tok.encode(TEXT, add_special_tokens=False)
    tables = VocabTables.get(tok, model.get_input_embeddings().weight.shape[0], MARKER, "cpu")
    hits = [i for i in range(1, len(ids) + 1) if ends_with_marker(tok, ids[:i], MARKER)]
    expected = decoded_hits(tok, ids, MARKER)
    assert hits == expected and len(hits) == 1
    assert tables.may_end_marker[ids[hits[0] - 1]], "the cheap pre-filter must let the marker's last token through"
