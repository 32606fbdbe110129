"""A character-level tokenizer in Hugging Face format, for the embedded default's tiny base model.

One token per character (every printable ASCII character, tab and newline, plus any other character of
the given texts), optional whole-word tokens (`words`: e.g. the CoT marker "The final answer is:" and
"\\boxed{", matched before single characters, as a BPE tokenizer keeps frequent strings whole; they shorten
every rollout by ~25 positions), and four special tokens: `<pad>` (id 0), `<bos>`, `<eos>`, `<unk>`. Nothing is added
automatically (no BOS/EOS), padding is on the left, and decoding is an exact inverse of encoding
(`decode(encode(s)) == s` for every string of known characters: spaces, newlines, backslashes, braces).

It is a plain `PreTrainedTokenizerFast` backed by a `tokenizers` WordLevel model with a per-character
Split pre-tokenizer and a Fuse decoder, so `save_pretrained(dir)` + `AutoTokenizer.from_pretrained(dir)`
reproduce it without any softcot code.
"""
from __future__ import annotations

import re
import string
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
BASE_CHARS = string.printable  # digits, letters, punctuation, space, \t \n \r \x0b \x0c


def char_vocab(texts: Iterable[str] = (), words: Iterable[str] = ()) -> dict[str, int]:
    """Specials first (`<pad>` = 0), then the sorted character set (printable ASCII + those in `texts`),
    then the multi-character `words` in the order given."""
    words = list(words)
    chars = set(BASE_CHARS)
    for t in list(texts) + words:
        chars.update(t)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in sorted(chars):
        vocab[c] = len(vocab)
    for w in words:
        if len(w) < 2 or w in vocab:
            raise ValueError(f"word token {w!r}: need a new string of at least 2 characters")
        vocab[w] = len(vocab)
    return vocab


def build_char_tokenizer(texts: Iterable[str] = (), words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    words = list(words)
    vocab = char_vocab(texts, words)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Each word (longest first) is one piece, every other character (newlines included) its own piece;
    # nothing is normalised or stripped.
    pattern = "|".join([re.escape(w) for w in sorted(words, key=len, reverse=True)] + [r"[\s\S]"])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        padding_side="left", truncation_side="left", clean_up_tokenization_spaces=False,
        model_max_length=1 << 20)
    return fast

