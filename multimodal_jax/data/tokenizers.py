"""Tokenizers by config: ``get_tokenizer`` picks the kind, and the checks of ``config.tokenizer``.

Byte-level (no files) and SentencePiece (a .model file; ``train_sentencepiece`` makes one
offline, deterministically) live here; CLIP BPE (``clip_bpe.py``) and SigLIP's SentencePiece
(``siglip_tokenizer.py``) beside it. All share ``tokenizer_base.Tokenizer``: ids laid out as
[bos] ids... eos pad..., in numpy and inside tf.data, truncation keeping eos last.
"""

import dataclasses
import io
import os
from typing import Any
from typing import Optional
from typing import Sequence

import numpy as np
import sentencepiece as spm
import tensorflow as tf

from multimodal_jax import fields
from multimodal_jax.data.clip_bpe import ClipBpeTokenizer
from multimodal_jax.data.siglip_tokenizer import SiglipTokenizer
from multimodal_jax.data.tokenizer_base import Tokenizer
from multimodal_jax.data.tokenizer_base import as_str
from multimodal_jax.data.tokenizer_base import load_sentencepiece

KINDS = ("sentencepiece", "bytes", "clip_bpe", "siglip")
FIELDS = ("kind", "path", "vocab_size", "max_len", "byte_fallback")  # of config.tokenizer


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes; ids: pad 0, bos 1, eos 2, byte b -> b + 3 (vocab 259). Needs no file."""

    OFFSET = 3

    def __init__(self, max_len: Optional[int] = None, add_bos: bool = True):
        self.pad_id, self.eos_id = 0, 2
        self.bos_id = 1 if add_bos else None
        self.vocab_size = 256 + self.OFFSET
        self.max_len = max_len

    def _ids(self, texts):
        return [[b + self.OFFSET for b in t.encode("utf-8")] for t in texts]

    def _tf_ids(self, text):
        return tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32) + self.OFFSET

    def _text(self, ids):
        data = bytes(i - self.OFFSET for i in ids if self.OFFSET <= i < self.vocab_size)
        return data.decode("utf-8", errors="replace")


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece .model file. Pads with the model's pad id (0 if it has none).
    ``proto``: the file's bytes, already read (and checked) by the caller."""

    def __init__(self, model_path: str, max_len: Optional[int] = None, add_bos: bool = True,
                 proto: Optional[bytes] = None):
        self.model_path = os.fspath(model_path)
        self._sp = load_sentencepiece(self.model_path, proto)
        if self._sp.eos_id() < 0:
            raise ValueError(f"SentencePiece model {self.model_path!r} has no eos piece; the "
                             "token layout needs one. Train with eos_id set (train_sentencepiece "
                             "does).")
        self.vocab_size = self._sp.get_piece_size()
        self.pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else 0
        self.eos_id = self._sp.eos_id()
        self.bos_id = self._sp.bos_id() if add_bos and self._sp.bos_id() >= 0 else None
        self.max_len = max_len

    def _ids(self, texts):
        return self._sp.encode(texts, out_type=int) if texts else []

    def _tf_ids(self, text):
        def ids(t):
            return np.asarray(self._sp.encode(as_str(t), out_type=int), np.int32)

        out = tf.numpy_function(ids, [text], tf.int32, stateful=False)
        return tf.ensure_shape(out, [None])

    def _text(self, ids):
        return self._sp.decode(ids)


def sentencepiece_model(texts: Sequence[str], vocab_size: int, model_type: str = "bpe",
                        byte_fallback: bool = False) -> bytes:
    """The bytes of a SentencePiece model trained on ``texts`` offline.

    Deterministic (one thread, input order kept): same texts -> same bytes. Ids: pad 0,
    bos 1, eos 2, unk 3. BPE by default: on a small caption vocabulary unigram prunes to
    sub-word fragments. vocab_size is an upper bound: a small corpus may give fewer pieces.
    ``byte_fallback`` adds the 256 byte pieces (ids 4-259), so a character never seen in
    training (another script, an emoji) becomes its UTF-8 bytes instead of unk, and decodes
    back to itself.
    """
    texts = [as_str(t) for t in texts]
    if not texts:
        raise ValueError("train_sentencepiece needs at least one text.")
    minimum = 8 + (256 if byte_fallback else 0)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be >= {minimum} (4 special ids"
                         f"{', 256 bytes' if byte_fallback else ''} + pieces), got {vocab_size}.")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=int(vocab_size),
        model_type=model_type, character_coverage=1.0, num_threads=1,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False,
        byte_fallback=bool(byte_fallback),
        shuffle_input_sentence=False, input_sentence_size=0, minloglevel=2)
    return model.getvalue()


def train_sentencepiece(texts: Sequence[str], model_path: str, vocab_size: int,
                        model_type: str = "bpe", max_len: Optional[int] = None,
                        byte_fallback: bool = False) -> SentencePieceTokenizer:
    """Trains a SentencePiece model on ``texts`` (``sentencepiece_model``) and writes it to
    ``model_path``; read ``.vocab_size`` of the returned tokenizer for the pieces it has."""
    data = sentencepiece_model(texts, vocab_size, model_type, byte_fallback)
    path = os.fspath(model_path)
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path + ".tmp", "wb") as f:  # then renamed: a killed process
        f.write(data)                                  # never leaves a half-written model
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return SentencePieceTokenizer(path, max_len=max_len)


def _field(config: Any, name: str, default: Any = None) -> Any:
    """config.name for a ConfigDict/dataclass/dict, default when missing or None."""
    value = config.get(name, default) if hasattr(config, "get") else getattr(config, name,
                                                                               default)
    return default if value is None else value


def get_tokenizer(config: Any) -> Tokenizer:
    """The tokenizer described by ``config.tokenizer``: kind, path, vocab_size, max_len.

    kind "bytes" needs no path; kind "sentencepiece" loads ``path``, "siglip" a SigLIP
    ``spiece.model`` (``siglip_tokenizer.py``), "clip_bpe" CLIP BPE files (``clip_bpe.py``).
    When vocab_size is set it must be at least the tokenizer's vocabulary (it sizes the text
    model's embedding).
    """
    kind = str(_field(config, "kind", "bytes")).lower()
    check_kind(kind)
    max_len = _field(config, "max_len")
    if kind == "bytes":
        tokenizer = ByteTokenizer(max_len=max_len)
    elif kind == "sentencepiece":
        path = _field(config, "path")
        if not path:
            raise ValueError("config.tokenizer.kind is 'sentencepiece' but config.tokenizer.path "
                             "is empty; set it to a .model file (see train_sentencepiece).")
        tokenizer = SentencePieceTokenizer(path, max_len=max_len)
    elif kind == "siglip":
        path = _field(config, "path")
        if not path:
            raise ValueError("config.tokenizer.kind is 'siglip' but config.tokenizer.path is empty; "
                             "set it to a SigLIP folder's spiece.model.")
        tokenizer = SiglipTokenizer(path, max_len=max_len, vocab_size=_field(config, "vocab_size"))
    else:
        tokenizer = ClipBpeTokenizer(_field(config, "path"), max_len=max_len)
    check_vocab_size(config, tokenizer)
    return tokenizer


def check_vocab_size(config: Any, tokenizer: Tokenizer) -> None:
    """``config.tokenizer.vocab_size``, when set, holds the tokenizer's vocabulary (it sizes the
    text model's embedding)."""
    vocab_size = _field(config, "vocab_size")
    if vocab_size and int(vocab_size) < tokenizer.vocab_size:
        kind = _field(config, "kind", "bytes")
        raise ValueError(
            f"config.tokenizer.vocab_size={vocab_size} is smaller than the {kind} tokenizer's "
            f"vocabulary ({tokenizer.vocab_size}); set it to >= {tokenizer.vocab_size}.")


@dataclasses.dataclass(frozen=True)
class TokenizerShape:
    """What models and compiled steps need of a tokenizer, from its config alone (no file):
    the vocabulary size and the special ids in ``train_sentencepiece``'s layout."""

    vocab_size: int
    max_len: Optional[int] = None
    pad_id: int = 0
    bos_id: Optional[int] = 1
    eos_id: int = 2


DEFAULT_VOCAB = {"bytes": 256 + ByteTokenizer.OFFSET, "clip_bpe": 49408}


def shape_of(tokenizer: Any) -> TokenizerShape:
    """``config.tokenizer``'s ``TokenizerShape``; a SentencePiece vocabulary is the configured
    ``vocab_size`` (an upper bound of what training on the captions gives)."""
    vocab = _field(tokenizer, "vocab_size") or DEFAULT_VOCAB.get(_field(tokenizer, "kind"))
    if not vocab:
        raise ValueError("config.tokenizer.vocab_size is empty: without the tokenizer file, the "
                         "text model's vocabulary size must be given.")
    return TokenizerShape(int(vocab), _field(tokenizer, "max_len"))


def check_kind(kind: str) -> None:
    """``ValueError`` unless ``kind`` is one of ``KINDS``."""
    if kind not in KINDS:
        raise ValueError(f"config.tokenizer.kind={kind!r}; choose one of {KINDS}.")


def check_config(tokenizer: Any, read_file: bool = True) -> None:
    """``config.tokenizer``: known fields, a known kind, whole-number sizes, and (with
    ``read_file``) a given file exists and reads as that kind of tokenizer (it is parsed,
    never executed)."""
    fields.check_known(tokenizer, FIELDS, "config.tokenizer")
    check_kind(tokenizer.kind)
    fields.check_positive_ints(tokenizer, ("vocab_size", "max_len"), "config.tokenizer")
    byte_fallback = tokenizer.get("byte_fallback", False)
    if not isinstance(byte_fallback, bool):
        raise ValueError(f"config.tokenizer.byte_fallback={byte_fallback!r} must be True or False.")
    if byte_fallback and tokenizer.kind != "sentencepiece":
        raise ValueError(f"config.tokenizer.byte_fallback=True is for kind='sentencepiece' (it "
                         f"trains the workdir's model with byte pieces); kind={tokenizer.kind!r} "
                         "has no such option: set it to False.")
    if not read_file:
        return
    path = tokenizer.get("path", "")
    if path and not os.path.exists(path):
        raise ValueError(f"config.tokenizer.path={path!r} does not exist; give an existing "
                         "tokenizer file, or leave it empty to train a SentencePiece model on the "
                         "training captions.")
    if path and tokenizer.kind != "bytes":
        try:
            get_tokenizer(tokenizer)
        except Exception as error:  # noqa: BLE001 - any failure to parse a user's file
            what = " ".join(f"{type(error).__name__}: {error}".split())[:400]
            raise ValueError(f"config.tokenizer.path={path!r} cannot be read as a "
                             f"{tokenizer.kind} tokenizer: {what}") from None
