"""Which dataset a config names, and whether it is ready: the ``data`` config's fields and
their defaults, the TFDS builder they name, preparing the built-in ``captioned_shapes`` on
demand (nothing else is ever downloaded), and the checks of the ``data`` block.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax import fields
from multimodal_jax.data import tfrecord_shards

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BUILTIN = "captioned_shapes"

# Every field of the ``data`` config and its default (None or "" in a config: use the default).
DEFAULTS = dict(
    name=None,  # TFDS name, e.g. "captioned_shapes/32px", "coco_captions", "cifar10".
    data_dir=None,  # None: TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR).
    train_split="train",
    eval_splits=("test",),
    image_key="image",
    text_key=None,  # e.g. "caption" or a nested path "captions/text" (a list: one is picked).
    label_key=None,  # e.g. "label"; without text_key, text = template.format(class name).
    caption_templates=("a photo of a {}.",),
    class_names=None,  # overrides the ClassLabel names used in templates.
    image_size=224,
    mean=CLIP_MEAN,  # per-channel, on images scaled to [0, 1].
    std=CLIP_STD,
    shuffle_buffer=10_000,
    flip=False,  # off: flipping can make a caption ("left of") false.
    max_len=None,  # token length; None: the tokenizer's ``max_len`` attribute.
    # --- classification additions (data/augment.py) ---
    augment="none",  # train-time: "none" (resize + centre crop) or "inception_crop".
    crop_area_min=0.05,  # smallest share of the image an inception crop keeps.
    train_filter=None,  # (feature, value): train only on examples where feature == value.
    extra_label_keys=(),  # more integer keys stacked after label_key: label [1 + K], -1 = none.
)


def default_data_config(**overrides: Any) -> ml_collections.ConfigDict:
    """A ``data`` ConfigDict holding every field with its default, updated by ``overrides``."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown data config fields {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    return ml_collections.ConfigDict({**DEFAULTS, **overrides})


def field(cfg, key: str):
    """Field ``key`` of the data config, or its default when missing, None or ""."""
    value = cfg.get(key, None) if hasattr(cfg, "get") else getattr(cfg, key, None)
    return DEFAULTS[key] if value is None or (isinstance(value, str) and not value) else value


def normalisation(cfg) -> tuple[tuple, tuple]:
    """``(mean, std)`` per channel of images in the data config's normalisation."""
    return tuple(field(cfg, "mean")), tuple(field(cfg, "std"))


def is_builtin(name: str) -> bool:
    """Whether the TFDS name is the built-in ``captioned_shapes`` (any config or version)."""
    return name.split("/")[0].split(":")[0] == BUILTIN


def hide_accelerators_from_tf() -> None:
    """Keep TF off the GPUs/TPUs so JAX owns their memory; a no-op once TF has started."""
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):
            pass


def builder(cfg, **kwargs) -> tfds.core.DatasetBuilder:
    """The TFDS builder named by the config, with a clear error for unknown names and for
    datasets tf.data cannot read."""
    name = field(cfg, "name")
    if not name:
        raise ValueError("The data config has no `name`; set e.g. data.name = 'captioned_shapes/32px'.")
    if is_builtin(name):
        from multimodal_jax.data import shapes_builder  # noqa: F401, PLC0415 - registers the builder
    try:
        found = tfds.builder(name, data_dir=field(cfg, "data_dir"), **kwargs)
    except ValueError as e:  # DatasetNotFoundError and unknown builder configs.
        raise ValueError(
            f"Unknown TFDS dataset {name!r} (data.name): {str(e).splitlines()[0]} "
            f"Use a registered TFDS name with an optional config and version, e.g. 'cifar10', "
            f"'coco_captions', or the built-in '{BUILTIN}/32px'."
        ) from None
    if found.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f"Dataset {name!r} in {found.data_dir} was prepared as array_record, which tf.data "
            f"cannot read. Prepare it again with tfrecord: "
            f"`tfds build {name} --file_format=tfrecord --data_dir=...`."
        )
    return found


def not_prepared_error(cfg, found: tfds.core.DatasetBuilder) -> FileNotFoundError:
    """The one error for a named dataset that is missing from its data dir."""
    name = field(cfg, "name")
    return FileNotFoundError(
        f"Dataset {name!r} is not prepared in {found.data_dir}. Nothing is downloaded at run "
        f"time: prepare it once where its source files are (`tfds build {name} --data_dir=DIR`, "
        "with --manual_dir for manual datasets), then set config.data.data_dir=DIR.")


def rebuild_advice(cfg, found: tfds.core.DatasetBuilder) -> str:
    """How to make a damaged shard of the dataset again."""
    name = field(cfg, "name")
    if is_builtin(name):
        return (f"Delete {found.data_dir} (this version of the built-in dataset) and rerun: it is "
                "prepared again, the same as before.")
    return (f"Restore the file from a copy of the data dir, or prepare the dataset again where "
            f"its source files are (`tfds build {name.split('/')[0]} --data_dir={found.data_dir_root} "
            "--overwrite`, with --config for a config).")


def splits_read(cfg) -> list[str]:
    """The splits a run of the data config reads: train, then evaluation."""
    return [field(cfg, "train_split"), *field(cfg, "eval_splits")]


def check_shards(cfg, found: tfds.core.DatasetBuilder) -> None:
    """``tfrecord_shards.DamagedShard`` when a shard of the splits read is missing or cut
    short (a ``stat`` per shard unless their sizes are off)."""
    tfrecord_shards.check_splits(found, splits_read(cfg), field(cfg, "name"),
                                 rebuild_advice(cfg, found))


def ensure_prepared(data_cfg) -> None:
    """Prepares the built-in captioned_shapes if it is missing; any other missing dataset is an
    error saying how to prepare it. Call it on one process, then wait on the others."""
    builtin = is_builtin(field(data_cfg, "name"))
    found = builder(data_cfg, **({"file_format": "tfrecord"} if builtin else {}))  # tf.data-readable
    if found.is_prepared():
        return
    if not builtin:
        raise not_prepared_error(data_cfg, found)
    found.download_and_prepare()


def ensure_prepared_once(data_cfg) -> None:
    """``ensure_prepared`` on process 0 only, the other processes waiting for it (no races)."""
    if jax.process_index() == 0:
        ensure_prepared(data_cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("dataset prepared")


def check_config(data: ml_collections.ConfigDict, prepared: bool = True) -> None:
    """Known fields, and the dataset is the built-in one (prepared on demand) or prepared in
    ``data_dir`` (with ``prepared=False``, fields only), its shards whole; ``ValueError`` /
    ``FileNotFoundError`` / ``tfrecord_shards.DamagedShard`` otherwise."""
    fields.check_known(data, DEFAULTS, "config.data")
    if not (isinstance(data.get("name"), str) and data.name):
        raise ValueError("config.data.name is empty; set e.g. 'captioned_shapes/32px' (the "
                         "built-in dataset).")
    if not prepared:
        return
    if is_builtin(data.name):
        from multimodal_jax.data import shapes_builder  # noqa: PLC0415 - registers the builder
        variants = [c.name for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS]
        variant = data.name.split("/")[1].split(":")[0] if "/" in data.name else variants[0]
        if variant not in variants:
            raise ValueError(f"config.data.name={data.name!r}: the built-in dataset has the "
                             f"configs {variants}, e.g. '{BUILTIN}/32px'.")
        found = builder(data, file_format="tfrecord")
        if found.is_prepared():  # (else it is prepared before the run reads it)
            check_shards(data, found)
        return
    if data.name.split("/")[0] not in tfds.list_builders():
        raise ValueError(f"config.data.name={data.name!r} is not a TFDS dataset; check the "
                         f"spelling or use '{BUILTIN}/32px', the built-in dataset.")
    found = builder(data)
    if not found.is_prepared():
        raise not_prepared_error(data, found)
    check_shards(data, found)
