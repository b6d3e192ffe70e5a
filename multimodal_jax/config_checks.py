"""Checks a run's config before anything heavy runs, so bad input gets one clear message.

``validate(config, workdir)`` raises ``ConfigError`` (a ``ValueError``) naming the field, what
was wrong and how to fix it; the CLI prints it and exits with code 2.
"""

import os

import jax
import ml_collections
import tensorflow_datasets as tfds

from multimodal_jax import parallel
from multimodal_jax.models import factory
from multimodal_jax.models import vit

REQUIRED_INTS = ("total_steps", "batch_size", "seed", "checkpoint_every_steps",
                 "eval_every_steps", "log_every_steps", "keep_checkpoints")
BUILTIN_DATASET = "captioned_shapes"
TOKENIZERS = ("sentencepiece", "bytes", "clip_bpe")


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and how to fix it."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_top_level(config: ml_collections.ConfigDict) -> None:
    for field in REQUIRED_INTS:
        _check(field in config, f"config.{field} is missing: every config needs {REQUIRED_INTS}.")
        value = config[field]
        _check(isinstance(value, int) and not isinstance(value, bool),
               f"config.{field} must be an integer, got {value!r} ({type(value).__name__}).")
        _check(value >= 0 if field == "seed" else value > 0,
               f"config.{field} must be {'>= 0' if field == 'seed' else 'positive'}, got {value}.")
    try:
        parallel.check_batch_divides(config.batch_size, jax.device_count(), "config.batch_size")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _check(config.parallel.driver in parallel.DRIVERS,
           f"config.parallel.driver={config.parallel.driver!r} is unknown; choose one of {parallel.DRIVERS}.")


def check_image_model(image: ml_collections.ConfigDict, image_size: int) -> None:
    """Variant string valid, and the image size tiled by the patch size."""
    try:
        sizes = vit.parse_variant(image.variant) if image.get("variant") else {}
    except ValueError as error:
        raise ConfigError(f"config.model.image.variant: {error}") from None
    patch = image.get("patch_size") or sizes.get("patch_size")
    _check(patch is not None, "config.model.image needs a patch_size (or a variant like 'B/16').")
    _check(image_size % patch == 0,
           f"config.data.image_size={image_size} is not divisible by the patch size {patch}: "
           f"use an image size that is a multiple of {patch} (e.g. {image_size // patch * patch or patch}).")
    _check(image.pool in vit.POOLS, f"config.model.image.pool={image.pool!r}; choose one of {vit.POOLS}.")


def check_data(data: ml_collections.ConfigDict) -> None:
    """The dataset is the built-in one (prepared on demand) or prepared in data_dir."""
    name = data.name.split("/")[0]
    if name == BUILTIN_DATASET:
        return
    _check(name in tfds.list_builders(),
           f"config.data.name={data.name!r} is not a TFDS dataset; check the spelling or use "
           f"'{BUILTIN_DATASET}/32px', the built-in dataset.")
    builder = tfds.builder(data.name, data_dir=data.data_dir or None)
    _check(builder.is_prepared(),
           f"Dataset {data.name!r} is not prepared in {builder.data_dir}. Nothing is downloaded at "
           "run time: prepare it first (tfds build / download_and_prepare with manual files) and "
           "point config.data.data_dir at its folder.")


def check_tokenizer(tokenizer: ml_collections.ConfigDict) -> None:
    _check(tokenizer.kind in TOKENIZERS,
           f"config.tokenizer.kind={tokenizer.kind!r}; choose one of {TOKENIZERS}.")
    path = tokenizer.get("path", "")
    _check(not path or os.path.exists(path),
           f"config.tokenizer.path={path!r} does not exist; give an existing tokenizer file, or "
           "leave it empty to train a SentencePiece model on the training captions.")


def check_workdir(workdir: str) -> None:
    parent = workdir
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    _check(os.access(parent or ".", os.W_OK),
           f"The workdir {workdir!r} cannot be written ({parent!r} is not writable): choose another.")


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """All checks for a training or evaluation run of ``config`` in ``workdir``."""
    check_top_level(config)
    check_workdir(workdir)
    _check(config.model.dtype in factory.DTYPES,
           f"config.model.dtype={config.model.dtype!r}; choose one of {sorted(factory.DTYPES)}.")
    if "image" in config.model:
        check_image_model(config.model.image, config.data.image_size)
    if "tokenizer" in config:
        check_tokenizer(config.tokenizer)
    check_data(config.data)
