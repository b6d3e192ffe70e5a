"""SigLIP's SentencePiece tokenizer, giving the same ids as transformers' ``SiglipTokenizer``.

Text is canonicalised as SigLIP was trained (lower-cased, ASCII punctuation removed, runs of
white space made one space, stripped), encoded by the folder's ``spiece.model``, and laid out as
``ids eos pad...`` with no bos; SigLIP pads with its end-of-text token (``pad_token="</s>"``) to
``max_len`` (64 for the published models), which is how ``padding="max_length"`` feeds the model.
Same interface as the other tokenizers (it subclasses ``tokenizer_base.Tokenizer``).
"""

import json
import os
import re
import string
from typing import Optional

import numpy as np
import tensorflow as tf

from multimodal_jax.data import tokenizer_base

MODEL_FILE = "spiece.model"
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def canonicalize(text: str, lower: bool = True) -> str:
    """SigLIP's text canonicalisation (``SiglipTokenizer.canonicalize_text``)."""
    text = text.lower() if lower else text
    return re.sub(r"\s+", " ", text.translate(_PUNCTUATION)).strip()


class SiglipTokenizer(tokenizer_base.Tokenizer):
    """``spiece.model`` (a file, or the folder holding it, with its ``tokenizer_config.json``);
    ``vocab_size``, if larger than the file's pieces, is the text model's embedding rows."""

    def __init__(self, path: str, max_len: Optional[int] = None, vocab_size: Optional[int] = None):
        path = os.fspath(path)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        self.model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
        self._sp = tokenizer_base.load_sentencepiece(self.model_path)
        settings = _read_settings(folder)
        self.lower = bool(settings.get("do_lower_case", True))
        self.eos_id = self._piece_id(_token(settings.get("eos_token"), "</s>"), "eos_token")
        self.pad_id = self._piece_id(_token(settings.get("pad_token"), "</s>"), "pad_token")
        self.bos_id = None
        # A checkpoint's embedding table may have more rows than the model file has pieces
        # (``config.tokenizer.vocab_size``, from its config.json): the model is sized by it.
        self.vocab_size = max(self._sp.get_piece_size(), int(vocab_size or 0))
        self.max_len = max_len

    def _piece_id(self, piece: str, what: str) -> int:
        index = self._sp.piece_to_id(piece)
        if index == self._sp.unk_id() and piece != self._sp.id_to_piece(index):
            raise ValueError(f"{self.model_path!r} has no piece {piece!r} (its {what}).")
        return index

    def _ids(self, texts):
        return [self._sp.encode(canonicalize(t, self.lower), out_type=int) for t in texts]

    def _tf_ids(self, text):
        def ids(t):  # t: a 0-d numpy array of bytes
            return np.asarray(self._ids([tokenizer_base.as_str(np.asarray(t).item())])[0], np.int32)

        out = tf.numpy_function(ids, [text], tf.int32, stateful=False)
        return tf.ensure_shape(out, [None])

    def _text(self, ids):
        return self._sp.decode(ids).strip()  # as transformers' (a lone "▁" piece decodes to " ")


def _read_settings(folder: str) -> dict:
    """``tokenizer_config.json`` beside the model (special tokens, lower-casing), if any."""
    path = os.path.join(folder, "tokenizer_config.json")
    if not folder or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _token(value, default: str) -> str:
    """A special token as transformers writes it: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value or default
