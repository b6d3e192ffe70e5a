"""Gives the run its tokenizer: the configured one, or one trained (offline, deterministically)
on the training captions and kept in the workdir when no path is given: a SentencePiece model
(``tokenizer.model``) or a CLIP BPE vocabulary (``clip_bpe/``)."""

import math
import os

import jax
import ml_collections
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import mixture
from multimodal_jax.data import records
from multimodal_jax.data import tokenizers

MAX_TRAINING_CAPTIONS = 100_000


def training_captions(data_cfg: ml_collections.ConfigDict, limit: int = MAX_TRAINING_CAPTIONS) -> list[str]:
    """Up to ``limit`` examples' captions of the train split, in file order, images left
    undecoded; with ``data.mixture``, each dataset's share of ``limit`` by its weight. Empty
    captions (a language that withholds an example) are skipped."""
    if not data_cfg.text_key:
        raise ValueError(
            f"Cannot train a tokenizer for {data_cfg.name!r}: it has no text_key. Set "
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
            texts.extend(v.decode("utf-8") for v in values if v)
    return texts


# Tokenizers a run trains on its captions when config.tokenizer.path is empty: where they go.
TRAINED_IN_WORKDIR = {"sentencepiece": workdir_lib.TOKENIZER, "clip_bpe": workdir_lib.CLIP_BPE}


def tokenizer_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """``config.tokenizer`` with its ``path``: the configured one, or the file the run trains
    into ``workdir`` (SentencePiece, CLIP BPE) when none is given."""
    tok_cfg = config.tokenizer
    if tok_cfg.get("path") or tok_cfg.kind not in TRAINED_IN_WORKDIR:
        return tok_cfg
    path = os.path.join(workdir, TRAINED_IN_WORKDIR[tok_cfg.kind])
    return ml_collections.ConfigDict({**tok_cfg.to_dict(), "path": path})


def _train(kind: str, config: ml_collections.ConfigDict, path: str) -> None:
    texts = training_captions(config.data)
    if kind == "sentencepiece":
        tokenizers.train_sentencepiece(texts, path, config.tokenizer.vocab_size,
                                       byte_fallback=config.tokenizer.get("byte_fallback", False))
    else:
        from multimodal_jax.data import clip_bpe  # noqa: PLC0415 - it imports tokenizers

        clip_bpe.train_clip_bpe(texts, path, config.tokenizer.vocab_size or 49408)


def ensure_tokenizer(config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
    """The tokenizer of ``config.tokenizer``; trains one into ``workdir`` first when a
    SentencePiece or CLIP BPE tokenizer has no path (process 0 trains, the others wait for it).
    ``shapes_only``: its ``TokenizerShape``, no file trained or read."""
    if shapes_only:
        return tokenizers.shape_of(config.tokenizer)
    tok_cfg = tokenizer_config(config, workdir)
    if tok_cfg.path != config.tokenizer.get("path"):  # the run's own, trained on its captions
        if jax.process_index() == 0 and not os.path.exists(tok_cfg.path):
            _train(tok_cfg.kind, config, tok_cfg.path)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("tokenizer trained")
    return tokenizers.get_tokenizer(tok_cfg)


def trained_tokenizer(config: ml_collections.ConfigDict, workdir: str):
    """The tokenizer a run in ``workdir`` was trained with; never trains one (a missing file
    is a ``FileNotFoundError`` saying so)."""
    tok_cfg = tokenizer_config(config, workdir)
    if tok_cfg.get("path") and not os.path.exists(tok_cfg.path):
        raise FileNotFoundError(f"The tokenizer {tok_cfg.path!r} of the run in {workdir!r} does not "
                                "exist: was the run trained (its first step writes it)?")
    return tokenizers.get_tokenizer(tok_cfg)
