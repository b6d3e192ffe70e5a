"""What every tokenizer is: text -> fixed-length int32 ids laid out as [bos] ids... eos pad...

The ``Tokenizer`` interface with that layout in numpy (``encode``) and inside tf.data
(``tf_encode``), and the reading of a SentencePiece model file. Each kind of tokenizer (bytes and
SentencePiece in ``tokenizers.py``, ``clip_bpe.py``, ``siglip_tokenizer.py``) builds on this
module, and ``tokenizers.get_tokenizer`` picks one by config, so imports run one way.
"""

import os
from typing import Any
from typing import List
from typing import Optional
from typing import Sequence
from typing import Union

import numpy as np
import sentencepiece as spm
import tensorflow as tf

Texts = Union[str, bytes, Sequence[Union[str, bytes]]]


def as_str(text: Union[str, bytes]) -> str:
    """Text as str (tf.data and tfds.as_numpy give bytes)."""
    return text.decode("utf-8") if isinstance(text, (bytes, np.bytes_)) else str(text)


def _check_max_len(max_len: Optional[int], min_len: int) -> int:
    """max_len as an int, or a clear error when missing or too short."""
    if max_len is None or int(max_len) < min_len:
        raise ValueError(f"max_len must be an int >= {min_len} (room for bos/eos), "
                         f"got {max_len!r}; pass max_len= or set config.tokenizer.max_len.")
    return int(max_len)


def layout(ids: Sequence[int], max_len: int, pad_id: int, eos_id: int,
           bos_id: Optional[int] = None) -> np.ndarray:
    """[bos] ids eos pad... as int32 [max_len]; long inputs are cut so eos stays last."""
    head = [] if bos_id is None else [bos_id]
    body = list(ids)[: max_len - len(head) - 1]
    row = np.full((max_len,), pad_id, np.int32)
    row[: len(head) + len(body) + 1] = head + body + [eos_id]
    return row


def tf_layout(ids: tf.Tensor, max_len: int, pad_id: int, eos_id: int,
              bos_id: Optional[int] = None) -> tf.Tensor:
    """``layout`` in TF ops, for tf.data: int32 ids [n] -> int32 [max_len] (static shape)."""
    head = [] if bos_id is None else [tf.constant([bos_id], tf.int32)]
    body = tf.cast(ids, tf.int32)[: max_len - len(head) - 1]
    row = tf.concat(head + [body, tf.constant([eos_id], tf.int32)], axis=0)
    row = tf.pad(row, [[0, max_len - tf.shape(row)[0]]], constant_values=pad_id)
    return tf.ensure_shape(row, [max_len])


class Tokenizer:
    """Common encode/decode/tf_encode; subclasses turn text into ids and back."""

    vocab_size: int
    pad_id: int
    eos_id: int
    bos_id: Optional[int]
    max_len: Optional[int]

    def _ids(self, texts: List[str]) -> List[List[int]]:
        """Ids of each text, without bos/eos/pad."""
        raise NotImplementedError

    def _tf_ids(self, text: tf.Tensor) -> tf.Tensor:
        """int32 ids [n] of a tf.string scalar, without bos/eos/pad."""
        raise NotImplementedError

    def _text(self, ids: List[int]) -> str:
        """Text of ids that contain no special tokens."""
        raise NotImplementedError

    def _min_len(self) -> int:
        return 1 if self.bos_id is None else 2

    def encode(self, texts: Texts, max_len: Optional[int] = None) -> np.ndarray:
        """int32 [B, max_len] for a batch of texts (one str gives B=1)."""
        max_len = _check_max_len(self.max_len if max_len is None else max_len, self._min_len())
        if isinstance(texts, (str, bytes)):
            texts = [texts]
        rows = [layout(ids, max_len, self.pad_id, self.eos_id, self.bos_id)
                for ids in self._ids([as_str(t) for t in texts])]
        return np.stack(rows) if rows else np.zeros((0, max_len), np.int32)

    def tf_encode(self, text: tf.Tensor, max_len: Optional[int] = None) -> tf.Tensor:
        """int32 [max_len] for a tf.string scalar; usable inside tf.data ``.map``."""
        max_len = _check_max_len(self.max_len if max_len is None else max_len, self._min_len())
        ids = self._tf_ids(tf.convert_to_tensor(text, tf.string))
        return tf_layout(ids, max_len, self.pad_id, self.eos_id, self.bos_id)

    def decode(self, ids: Any) -> Union[str, List[str]]:
        """Text of one row of ids (up to the first eos; bos/pad dropped); a list for 2-D ids."""
        ids = np.asarray(ids)
        if ids.ndim == 2:
            return [self.decode(row) for row in ids]
        out = []
        for i in ids.tolist():
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(i)
        return self._text(out)


def load_sentencepiece(model_path: str, proto: Optional[bytes] = None) -> spm.SentencePieceProcessor:
    """Loads a SentencePiece model from a local or tf.io.gfile path (or from ``proto``, the
    bytes already read from it), with clear errors."""
    path = os.fspath(model_path)
    if proto is None and not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"SentencePiece model file not found: {path!r}. Train one with "
            "multimodal_jax.data.tokenizers.train_sentencepiece(texts, model_path, vocab_size), "
            "or point config.tokenizer.path at an existing .model file (or use kind='bytes').")
    if proto is None:
        with tf.io.gfile.GFile(path, "rb") as f:
            proto = f.read()
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError, TypeError) as e:
        raise ValueError(
            f"{path!r} is not a SentencePiece model ({e}). Give the binary .model file "
            "written by SentencePiece (not the .vocab file, a JSON tokenizer or a text file), "
            "or train one with train_sentencepiece(...).") from e
    if processor.get_piece_size() <= 0:
        raise ValueError(f"{path!r} is an empty SentencePiece model; retrain it.")
    return processor
