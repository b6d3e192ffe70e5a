"""Which dataset a config names, and whether it is ready: the ``data`` config's fields and
their defaults, the TFDS builder they name (registered in this process, or read-only from a
dataset prepared in ``data_dir`` by any builder), preparing the built-in ``captioned_shapes``
on demand (nothing else is ever downloaded), and the checks of the ``data`` block (its lists,
its mixture, and a train split large enough for the batch).
"""

from __future__ import annotations

import os
import types
from typing import Any

import jax
import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax import fields
from multimodal_jax.data import mixture
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
    # --- several datasets (data/mixture.py) ---
    mixture=(),  # ((name, weight), ...): train on these prepared datasets; evaluation on `name`.
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


READ_FORMATS = (tfds.core.FileFormat.TFRECORD, tfds.core.FileFormat.ARRAY_RECORD)


def data_dir_shown(cfg) -> str:
    """The data dir a config reads, for messages (TFDS's default when the field is empty)."""
    return field(cfg, "data_dir") or os.environ.get("TFDS_DATA_DIR") or tfds.core.constants.DATA_DIR


def builder(cfg, **kwargs) -> tfds.core.DatasetBuilder:
    """The TFDS builder named by the config: a builder registered in this process, or a
    dataset prepared in ``data.data_dir`` by any builder (read as TFDS's read-only builder), in
    a format the pipeline reads (tfrecord, array_record); clear errors otherwise."""
    name = field(cfg, "name")
    if not name:
        raise ValueError("The data config has no `name`; set e.g. data.name = 'captioned_shapes/32px'.")
    if is_builtin(name):
        from multimodal_jax.data import shapes_builder  # noqa: F401, PLC0415 - registers the builder
    try:
        found = tfds.builder(name, data_dir=field(cfg, "data_dir"), **kwargs)
    except ValueError as e:  # DatasetNotFoundError and unknown builder configs.
        raise ValueError(
            f"Unknown TFDS dataset {name!r} (data.name): {str(e).splitlines()[0]} It is neither "
            f"a TFDS builder of this process nor prepared in {data_dir_shown(cfg)} (data.data_dir). "
            f"Use a TFDS name with an optional config and version ('cifar10', 'coco_captions', "
            f"the built-in '{BUILTIN}/32px'), a dataset prepared in data.data_dir, or prepare "
            f"your own files with `python -m train.prepare --name NAME --data_dir DIR`."
        ) from None
    file_format = found.info.file_format
    if file_format is not None and file_format not in READ_FORMATS:
        raise ValueError(
            f"Dataset {name!r} in {found.data_dir} was prepared as {file_format.value}; the "
            f"pipeline reads {[f.value for f in READ_FORMATS]}. Prepare it again with one of "
            f"them: `tfds build {name} --file_format=array_record --data_dir=...`."
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


def splits_read(cfg, eval_only: bool = False) -> list[str]:
    """The splits a run of the data config reads: train, then evaluation (``eval_only``: a
    mixture trains on other datasets)."""
    return [*([] if eval_only else [field(cfg, "train_split")]), *field(cfg, "eval_splits")]


def check_shards(cfg, found: tfds.core.DatasetBuilder, eval_only: bool = False) -> None:
    """``tfrecord_shards.DamagedShard`` when a shard of the splits read is missing or cut
    short (a ``stat`` per shard unless their sizes are off)."""
    tfrecord_shards.check_splits(found, splits_read(cfg, eval_only), field(cfg, "name"),
                                 rebuild_advice(cfg, found))


def ensure_prepared(data_cfg) -> None:
    """Prepares the built-in captioned_shapes if it is missing (the evaluation dataset
    ``data.name`` and each dataset of ``data.mixture``); any other missing dataset is an error
    saying how to prepare it. Call it on one process, then wait on the others."""
    names = [field(data_cfg, "name")] + [name for name, _ in data_cfg.get("mixture", None) or ()]
    for name in dict.fromkeys(names):
        cfg = ml_collections.ConfigDict({**data_cfg.to_dict(), "name": name})
        builtin = is_builtin(name)
        found = builder(cfg, **({"file_format": "tfrecord"} if builtin else {}))
        if found.is_prepared():
            continue
        if not builtin:
            raise not_prepared_error(cfg, found)
        found.download_and_prepare()


def ensure_prepared_once(data_cfg) -> None:
    """``ensure_prepared`` on process 0 only, the other processes waiting for it (no races)."""
    if jax.process_index() == 0:
        ensure_prepared(data_cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("dataset prepared")


def check_config(data: ml_collections.ConfigDict, prepared: bool = True,
                 batch_size: int | None = None) -> None:
    """Known fields of the right types (lists as ``fields.string_list`` reads them), and every
    dataset it names (``name``, the ``mixture``'s) is the built-in one (prepared on demand) or
    prepared in ``data_dir`` with a train split that holds its share of a global batch of
    ``batch_size`` (with ``prepared=False``, fields only); ``ValueError`` /
    ``FileNotFoundError`` / ``tfrecord_shards.DamagedShard`` (a shard of a split read missing
    or cut short) otherwise."""
    fields.check_known(data, DEFAULTS, "config.data")
    if not (isinstance(data.get("name"), str) and data.name):
        raise ValueError("config.data.name is empty; set e.g. 'captioned_shapes/32px' (the "
                         "built-in dataset).")
    _check_lists(data)
    mixture.check(data.get("mixture", None))
    if not prepared:
        return
    found = _check_prepared(data, "config.data.name")  # evaluation's, and training's alone
    mixed = bool(data.get("mixture"))
    trained = [(data, found, 1.0)]
    if mixed:
        trained = [(part, _check_prepared(part, "config.data.mixture"), weight)
                   for part, weight in mixture.components(data)]
    for part, part_found, weight in trained:
        if batch_size:
            check_split_size(part, part_found, batch_size, weight)
    read = [(data, found, mixed)] + [(part, part_found, False) for part, part_found, _ in trained
                                     if mixed]
    for part, part_found, eval_only in read:  # (the built-in one may be prepared only later)
        if part_found.is_prepared():
            check_shards(part, part_found, eval_only)


def _check_lists(data) -> None:
    """The data block's list fields: the right types, and not empty where they must not be."""
    fields.string_list(field(data, "eval_splits"), "config.data.eval_splits", allow_empty=True)
    fields.string_list(field(data, "extra_label_keys"), "config.data.extra_label_keys",
                       allow_empty=True)
    for template in fields.string_list(field(data, "caption_templates"), "config.data.caption_templates"):
        if "{}" not in template:
            raise ValueError(f"config.data.caption_templates: {template!r} has no '{{}}' where "
                             "the class name goes, e.g. 'a photo of a {}.'.")
    if data.get("class_names") is not None:
        fields.string_list(data.class_names, "config.data.class_names")
    for key in ("mean", "std"):
        values = field(data, key)
        if not (isinstance(values, (tuple, list)) and len(values) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise ValueError(f"config.data.{key} must be 3 numbers (one per channel), got "
                             f"{values!r}.")
    if min(field(data, "std")) <= 0:
        raise ValueError(f"config.data.std must be positive, got {field(data, 'std')!r}.")
    train_filter = field(data, "train_filter")
    if train_filter and not (isinstance(train_filter, (tuple, list)) and len(train_filter) == 2
                             and isinstance(train_filter[0], str)):
        raise ValueError(f"config.data.train_filter must be (feature, value), e.g. "
                         f"('num_objects', 1), or None / () for every example (on the command line "
                         f"--config.data.train_filter='()'); got {train_filter!r}.")


def _check_prepared(data, where: str) -> tfds.core.DatasetBuilder:
    """The builder of ``data.name``: prepared, or the built-in dataset (prepared on demand);
    ``ValueError`` / ``FileNotFoundError`` otherwise."""
    if is_builtin(data.name):
        from multimodal_jax.data import shapes_builder  # noqa: PLC0415 - registers the builder
        variants = [c.name for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS]
        variant = data.name.split("/")[1].split(":")[0] if "/" in data.name else variants[0]
        if variant not in variants:
            raise ValueError(f"{where}: {data.name!r}: the built-in dataset has the "
                             f"configs {variants}, e.g. '{BUILTIN}/32px'.")
        return builder(data, file_format="tfrecord")  # prepared or not: it will be
    try:
        found = builder(data)
    except ValueError as error:
        if not str(error).startswith("Unknown TFDS dataset"):
            raise
        raise ValueError(
            f"{where}: {data.name!r} is not a TFDS dataset: no builder of that name is "
            f"registered and none is prepared in {data_dir_shown(data)} (config.data.data_dir). "
            f"Check the spelling and the data dir, prepare your own files with `python -m "
            f"train.prepare --name NAME --data_dir DIR`, or use '{BUILTIN}/32px', the "
            f"built-in dataset.") from None
    if not found.is_prepared():
        raise not_prepared_error(data, found)
    return found


def split_size(found: tfds.core.DatasetBuilder, split: str, where: str) -> int:
    """Examples in ``split`` (TFDS split syntax, e.g. ``train[:10%]``) of a prepared dataset,
    or of the built-in one before it is prepared (its config says how many it will have)."""
    from multimodal_jax.data import shapes_builder  # noqa: PLC0415 - only the built-in is unprepared here
    try:
        if found.is_prepared():
            return int(found.info.splits[split].num_examples)
        planned = {name: types.SimpleNamespace(num_examples=found.builder_config.num_examples(name))
                   for name in shapes_builder.SPLITS}
        parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(planned)
        return sum(len(range(*slice(p.from_, p.to).indices(planned[p.splitname].num_examples)))
                   for p in parts)
    except (KeyError, ValueError, AssertionError) as error:
        known = sorted(found.info.splits.keys()) if found.is_prepared() else list(shapes_builder.SPLITS)
        raise ValueError(f"{where}={split!r} is not a split of {found.name!r} (its splits: "
                         f"{known}): {str(error).splitlines()[0]}") from None


def check_split_size(data, found: tfds.core.DatasetBuilder, batch_size: int,
                     weight: float = 1.0) -> int:
    """The train split's size, at least its share (``weight``) of one global batch; a smaller
    split would put some examples twice in every batch (a contrastive loss then counts copies
    of a positive as negatives)."""
    split = field(data, "train_split")
    size = split_size(found, split, "config.data.train_split")
    share = weight * batch_size
    if size < share:
        of = "one global batch" if weight == 1.0 else f"its share of a global batch ({share:g})"
        raise ValueError(
            f"config.data.train_split={split!r} of {data.name!r} has {size} examples, fewer "
            f"than {of} (config.batch_size={batch_size}): every batch would hold some examples "
            f"twice, and a contrastive loss counts the copies of a positive as negatives. Use a "
            f"larger split or config.batch_size <= {int(size / weight)}.")
    return size
