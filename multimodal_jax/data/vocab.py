"""Gives the run its tokenizer: the configured one, or a SentencePiece model trained (offline,
deterministically) on the training captions and kept in the workdir when no path is given."""

import math
import os

import jax
import ml_collections
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax.data import datasets
from multimodal_jax.data import mixture
from multimodal_jax.data import records
from multimodal_jax.data import tokenizers

MAX_TRAINING_CAPTIONS = 100_000


def training_captions(data_cfg: ml_collections.ConfigDict, limit: int = MAX_TRAINING_CAPTIONS) -> list[str]:
    """Up to ``limit`` captions of the train split, in file order, images left undecoded; with
    ``data.mixture``, each dataset's share of ``limit`` by its weight."""
    if not data_cfg.text_key:
        raise ValueError(
            f"Cannot train a SentencePiece model for {data_cfg.name!r}: it has no text_key. Set "
            "tokenizer.path to a .model file, or tokenizer.kind='bytes'.")
    datasets.hide_accelerators_from_tf()
    texts = []
    for part, weight in mixture.components(data_cfg):
        builder = datasets.builder(part)
        ds = records.read(builder, part.train_split, {part.image_key: tfds.decode.SkipDecoding()})
        for example in ds.take(math.ceil(limit * weight)).as_numpy_iterator():
            value = example
            for key in part.text_key.split("/"):
                value = value[key]
            values = value if hasattr(value, "__len__") and not isinstance(value, bytes) else [value]
            texts.extend(v.decode("utf-8") for v in values)
    return texts


def ensure_tokenizer(config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
    """The tokenizer of ``config.tokenizer``; trains ``workdir/tokenizer.model`` first when a
    SentencePiece tokenizer has no path (process 0 trains, the others wait for it).
    ``shapes_only``: its ``TokenizerShape``, no file trained or read."""
    if shapes_only:
        return tokenizers.shape_of(config.tokenizer)
    tok_cfg = config.tokenizer
    if tok_cfg.kind == "sentencepiece" and not tok_cfg.path:
        path = os.path.join(workdir, "tokenizer.model")
        if jax.process_index() == 0 and not os.path.exists(path):
            tokenizers.train_sentencepiece(training_captions(config.data), path, tok_cfg.vocab_size)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("tokenizer trained")
        tok_cfg = ml_collections.ConfigDict({**tok_cfg.to_dict(), "path": path})
    return tokenizers.get_tokenizer(tok_cfg)
