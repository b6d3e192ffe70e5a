"""CLIP's byte-level BPE tokenizer, giving the same ids as Hugging Face's ``CLIPTokenizer``.

Same interface as the other tokenizers (it subclasses ``tokenizer_base.Tokenizer``).
Reads ``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``) from a Hugging Face directory,
or OpenAI's ``bpe_simple_vocab_16e6.txt.gz``. Pure Python (stdlib ``re`` and ``unicodedata``):
the ``\\p{L}`` / ``\\p{N}`` classes of CLIP's word pattern are built from ``unicodedata``.
Like ``CLIPTokenizer`` (and unlike OpenAI's original) it does not apply ftfy / html unescaping.
``train_clip_bpe`` learns such a vocabulary from a run's captions (offline, deterministic), so a
model trained with it exports to Hugging Face ``CLIPModel`` with tokenizer files ``CLIPTokenizer``
reads.
"""

import collections
import functools
import gzip
import json
import os
import re
import sys
import unicodedata
from typing import Iterable
from typing import Optional

import numpy as np
import tensorflow as tf

from multimodal_jax.data.tokenizer_base import Tokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"
OPENAI_NUM_MERGES = 49152 - 256 - 2  # merges OpenAI's SimpleTokenizer reads from the .gz file
# The pattern keeps these literal strings whole, then CLIPTokenizer's ByteLevel step re-splits
# them with GPT-2's pattern; only these pieces are changed by that second split.
RESPLIT = {"<|startoftext|>": ("<|", "startoftext", "|>"),
           "<|endoftext|>": ("<|", "endoftext", "|>")}
# Unicode White_Space (what the Rust regex behind CLIPTokenizer calls \s), not Python's \s.
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from the 256 byte values to printable characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def _char_class(categories: str) -> str:
    """A regex character-class body matching every code point whose category starts with one of
    ``categories`` (e.g. ``"L"`` for ``\\p{L}``)."""
    ranges, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] in categories:
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            ranges.append((start, prev))
            start = None
    if start is not None:
        ranges.append((start, prev))
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


@functools.lru_cache(maxsize=1)
def word_pattern() -> re.Pattern:
    """CLIP's pre-tokenisation pattern, with ``\\p{L}``, ``\\p{N}`` and ``\\s`` spelled out."""
    letters, numbers = _char_class("L"), _char_class("N")
    space = re.escape(WHITESPACE)
    return re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                      f"[{letters}]+|[{numbers}]|[^{space}{letters}{numbers}]+")


def normalize(text: str) -> str:
    """``CLIPTokenizer``'s normaliser: NFC, whitespace runs -> one space, per-char lowercase."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(f"[{re.escape(WHITESPACE)}]+", " ", text)
    return "".join(c.lower() for c in text)  # per character, as Rust's (no final-sigma rule)


class ClipBpeTokenizer(Tokenizer):
    """CLIP BPE tokenizer: ``encode(texts, max_len)`` -> ``[bos] ids.. eos pad..`` int32.

    ``path`` is a directory with ``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``, or
    ``bpe_simple_vocab_16e6.txt.gz``), or one of those files. ``pad_id`` defaults to the
    end-of-text id, as in Hugging Face's CLIP tokenizers (open_clip pads with 0). ``files``: the
    bytes of ``vocab.json`` and ``merges.txt``, already read (and checked) by the caller.
    """

    def __init__(self, path: str, max_len: Optional[int] = None, pad_id: Optional[int] = None,
                 files: Optional[dict[str, bytes]] = None):
        vocab, merges = parse_files(files) if files is not None else load_vocab_and_merges(path)
        for special in (BOS, EOS):
            if special not in vocab:
                raise ValueError(f"The vocabulary at {path!r} lacks the special token {special!r}; "
                                 "is it a CLIP vocabulary?")
        self.encoder = vocab
        self.decoder = {i: token for token, i in vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.vocab_size = max(vocab.values()) + 1
        self.bos_id, self.eos_id = vocab[BOS], vocab[EOS]
        self.unk_id = self.eos_id  # CLIPTokenizer's unk_token is <|endoftext|>
        self.pad_id = self.eos_id if pad_id is None else int(pad_id)
        self.max_len = max_len
        self._specials = re.compile(f"({re.escape(BOS)}|{re.escape(EOS)})")
        self._cache: dict[str, list[int]] = {}

    def text_to_ids(self, text: str) -> list[int]:
        """Ids of ``text`` without bos/eos; literal special-token strings map to their ids."""
        ids = []
        for part in self._specials.split(text):
            if part in (BOS, EOS):
                ids.append(self.encoder[part])
            elif part:
                for piece in word_pattern().findall(normalize(part)):
                    for word in RESPLIT.get(piece, (piece,)):
                        ids += self._word_ids(word)
        return ids

    def _word_ids(self, word: str) -> list[int]:
        if word not in self._cache:
            chars = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            self._cache[word] = [self.encoder.get(s, self.unk_id) for s in self._bpe(chars)]
        return self._cache[word]

    def _bpe(self, chars: str) -> list[str]:
        """Merges the lowest-ranked adjacent pair (leftmost on ties) until none is left."""
        symbols = list(chars[:-1]) + [chars[-1] + END_OF_WORD]
        while len(symbols) > 1:
            rank, i = min((self.ranks.get(pair, float("inf")), i)
                          for i, pair in enumerate(zip(symbols, symbols[1:])))
            if rank == float("inf"):
                break
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        return symbols

    def _ids(self, texts):
        return [self.text_to_ids(text) for text in texts]

    def _tf_ids(self, text):
        def ids(t):
            text = t.decode("utf-8") if isinstance(t, (bytes, np.bytes_)) else str(t)
            return np.asarray(self.text_to_ids(text), np.int32)

        out = tf.numpy_function(ids, [text], tf.int32, stateful=False)
        return tf.ensure_shape(out, [None])

    def _text(self, ids):
        tokens = "".join(self.decoder.get(i, "") for i in ids)
        data = bytearray(self.byte_decoder[c] for c in tokens if c in self.byte_decoder)
        return data.decode("utf-8", errors="replace").replace(END_OF_WORD, " ").strip()


def load_vocab_and_merges(path: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges in rank order) from a CLIP tokenizer directory or file."""
    if os.path.isdir(path):
        for names in (("vocab.json", "merges.txt"), ("tokenizer.json",),
                      ("bpe_simple_vocab_16e6.txt.gz",)):
            if all(os.path.exists(os.path.join(path, n)) for n in names):
                return load_vocab_and_merges(os.path.join(path, names[0]))
        raise FileNotFoundError(f"No vocab.json + merges.txt, tokenizer.json or "
                                f"bpe_simple_vocab_16e6.txt.gz in {path!r}.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No CLIP tokenizer file at {path!r}.")
    if path.endswith(".gz"):
        return _openai_vocab_and_merges(path)
    if os.path.basename(path) == "tokenizer.json":
        return _tokenizer_json(path)
    merges_path = os.path.join(os.path.dirname(path), "merges.txt")
    with open(path, "rb") as vocab, open(merges_path, "rb") as merges:
        return parse_files({"vocab.json": vocab.read(), "merges.txt": merges.read()})


def parse_files(files: dict[str, bytes]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges in rank order) from the bytes of ``vocab.json`` and ``merges.txt``."""
    vocab = json.loads(files["vocab.json"].decode("utf-8"))
    return vocab, _parse_merges(files["merges.txt"].decode("utf-8").split("\n"))


def _parse_merges(lines: Iterable[str]) -> list[tuple[str, str]]:
    """``"a b"`` lines -> pairs, skipping the ``#version`` header and blank lines."""
    merges = []
    for line in lines:
        if line.startswith("#version") or not line.strip():
            continue
        first, second = line.split()
        merges.append((first, second))
    return merges


def _tokenizer_json(path: str):
    with open(path, encoding="utf-8") as f:
        model = json.load(f)["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def _openai_vocab_and_merges(path: str):
    """OpenAI's ``SimpleTokenizer`` vocabulary: bytes, bytes + ``</w>``, merges, specials."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1: OPENAI_NUM_MERGES + 1]
    merges = _parse_merges(lines)
    tokens = list(bytes_to_unicode().values())
    tokens += [t + END_OF_WORD for t in tokens] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


NUM_BASE = 2 * 256 + 2  # the byte symbols, with and without </w>, and the two special tokens


def _words(texts: Iterable[str]) -> collections.Counter:
    """How often each pre-tokenised word occurs in ``texts`` (CLIP's normaliser and pattern)."""
    words: collections.Counter = collections.Counter()
    for text in texts:
        for piece in word_pattern().findall(normalize(text)):
            words.update(RESPLIT.get(piece, (piece,)))
    return words


def _symbols(word: str, byte_encoder: dict[int, str]) -> tuple[str, ...]:
    chars = [byte_encoder[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1]) + (chars[-1] + END_OF_WORD,)


def _merged(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """``symbols`` with every adjacent ``pair`` (left to right) joined."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def learn_merges(texts: Iterable[str], num_merges: int, min_count: int = 2) -> list[tuple[str, str]]:
    """Byte-level BPE merges of ``texts``, most frequent adjacent pair first (ties: the smallest
    pair), until ``num_merges`` or no pair occurs ``min_count`` times."""
    byte_encoder = bytes_to_unicode()
    counts = _words(texts)
    words = {w: _symbols(w, byte_encoder) for w in counts}
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs: collections.Counter = collections.Counter()
        for word, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best, count = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        if count < min_count:
            break
        merges.append(best)
        words = {w: _merged(s, best) if best[0] in s else s for w, s in words.items()}
    return merges


def clip_bpe_files(texts: Iterable[str], vocab_size: int) -> dict[str, bytes]:
    """The bytes of ``vocab.json`` and ``merges.txt`` of a CLIP BPE vocabulary of at most
    ``vocab_size`` tokens learnt from ``texts`` (Hugging Face's layout, OpenAI's token order:
    bytes, bytes with ``</w>``, merges, ``<|startoftext|>``, ``<|endoftext|>``)."""
    if vocab_size <= NUM_BASE:
        raise ValueError(f"A CLIP BPE vocabulary needs more than {NUM_BASE} tokens (bytes, bytes "
                         f"ending a word, two specials); config.tokenizer.vocab_size={vocab_size}.")
    merges = learn_merges(texts, vocab_size - NUM_BASE)
    tokens = list(bytes_to_unicode().values())
    tokens += [t + END_OF_WORD for t in tokens] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
    return {"vocab.json": vocab.encode("utf-8"),
            "merges.txt": ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode("utf-8")}


def train_clip_bpe(texts: Iterable[str], directory: str, vocab_size: int,
                   max_len: Optional[int] = None) -> "ClipBpeTokenizer":
    """Learns a CLIP BPE vocabulary (``clip_bpe_files``) and writes its ``vocab.json`` +
    ``merges.txt`` into ``directory``."""
    files = clip_bpe_files(texts, vocab_size)
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():  # each written beside, then renamed into place
        path = os.path.join(directory, name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return ClipBpeTokenizer(directory, max_len=max_len)
