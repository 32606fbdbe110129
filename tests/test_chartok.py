"""softcot.chartok: the char tokenizer's exact round trips, padding, unknown characters, word tokens, and a
reload through plain transformers."""
from __future__ import annotations

import pytest

from softcot.chartok import SPECIAL_TOKENS, build_char_tokenizer, char_vocab
from softcot.toy import TOY_WORDS

ROUND_TRIP = ["Q: 7+5-3+2\nA: 7+5=12 12-3=9 9+2=11 The final answer is: \\boxed{11}",
              "  leading and trailing  ", "\\frac{a}{b} {}{{}}\t\r\n", "~!@#$%^&*()_+`-=[]|;':\",./<>?", ""]


def test_tokenizer_round_trip_and_reload(tmp_path):
    from transformers import AutoTokenizer

    tok = build_char_tokenizer(["héllo"])
    assert tok.pad_token_id == 0 and tok.padding_side == "left"
    assert {tok.bos_token, tok.eos_token, tok.unk_token} == {"<bos>", "<eos>", "<unk>"}
    for s in ROUND_TRIP + ["héllo"]:
        ids = tok.encode(s)
        assert len(ids) == len(s) and tok.unk_token_id not in ids   # one token per char, none added
        assert tok.decode(ids) == s
    batch = tok(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [0, 0] and batch["attention_mask"][0] == [0, 0, 1, 1]
    assert tok.decode(tok.encode("a☃b")) == "a<unk>b"   # unknown characters map to <unk>
    tok.save_pretrained(tmp_path)
    re_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert re_tok.get_vocab() == tok.get_vocab() and re_tok.padding_side == "left"
    for s in ROUND_TRIP + ["héllo"]:
        assert re_tok.encode(s) == tok.encode(s)
        assert re_tok.decode(re_tok.encode(s)) == s
    assert re_tok.decode(re_tok.encode("ab") + [re_tok.eos_token_id], skip_special_tokens=True) == "ab"


def test_word_tokens_are_single_tokens_matched_before_characters():
    tok = build_char_tokenizer(words=TOY_WORDS)
    text = "7+5=12 The final answer is: \\boxed{12}"
    ids = tok.encode(text)
    assert tok.convert_ids_to_tokens(ids)[-6:] == ["The final answer is:", " ", "\\boxed{", "1", "2", "}"]
    assert len(ids) == len(text) - (len(TOY_WORDS[0]) - 1) - (len(TOY_WORDS[1]) - 1)
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(tok.encode("The final answer")) == list("The final answer")   # no partial word


def test_vocab_layout():
    vocab = char_vocab(["é"], words=["ab"])
    assert [vocab[s] for s in SPECIAL_TOKENS] == [0, 1, 2, 3]
    chars = [t for t, i in sorted(vocab.items(), key=lambda x: x[1]) if t not in SPECIAL_TOKENS and t != "ab"]
    assert chars == sorted(chars) and "é" in chars and vocab["ab"] == len(vocab) - 1
    with pytest.raises(ValueError, match="word token 'a'"):
        char_vocab(words=["a"])
