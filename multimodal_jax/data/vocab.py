"""Gives the run its tokenizer: the configured one, or a SentencePiece model trained (offline,
deterministically) on the training captions and kept in the workdir when no path is given."""

import os

import jax
import ml_collections
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax.data import datasets
from multimodal_jax.data import tokenizers

MAX_TRAINING_CAPTIONS = 100_000


def training_captions(data_cfg: ml_collections.ConfigDict, limit: int = MAX_TRAINING_CAPTIONS) -> list[str]:
    """Up to ``limit`` examples' captions of the train split, in file order, images left
    undecoded; empty captions (a language that withholds an example) are skipped."""
    if not data_cfg.text_key:
        raise ValueError(
            f"Cannot train a SentencePiece model for {data_cfg.name!r}: it has no text_key. Set "
            "tokenizer.path to a .model file, or tokenizer.kind='bytes'.")
    datasets.hide_accelerators_from_tf()
    builder = tfds.builder(data_cfg.name, data_dir=data_cfg.data_dir or None)
    ds = builder.as_dataset(split=data_cfg.train_split, shuffle_files=False,
                            decoders={data_cfg.image_key: tfds.decode.SkipDecoding()})
    texts = []
    for example in ds.take(limit).as_numpy_iterator():
        value = example
        for part in data_cfg.text_key.split("/"):
            value = value[part]
        values = value if hasattr(value, "__len__") and not isinstance(value, bytes) else [value]
        texts.extend(v.decode("utf-8") for v in values if v)
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
            tokenizers.train_sentencepiece(training_captions(config.data), path, tok_cfg.vocab_size,
                                           byte_fallback=tok_cfg.get("byte_fallback", False))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("tokenizer trained")
        tok_cfg = ml_collections.ConfigDict({**tok_cfg.to_dict(), "path": path})
    return tokenizers.get_tokenizer(tok_cfg)
