"""TFDS -> tf.data -> per-process numpy batches; the global example stream is the same for any
number of processes, and resuming at step k continues it exactly.

Train stream: read the split in file order -> repeat -> seeded shuffle -> number every example
-> skip `start_step` global batches' worth -> GLOBAL batches of undecoded records -> this
process's slice -> decode, resize, normalise, tokenise -> local batches. Only the slice a process
keeps is decoded; per-example randomness (caption choice, flip) is seeded by (seed, example number).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from multimodal_jax.data import augment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BUILTIN = "captioned_shapes"

# Every field of the `data` config and its default (None or "" in a config: use the default).
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
    max_len=None,  # token length; None: the tokenizer's `max_len` attribute.
    # --- classification additions (data/augment.py) ---
    augment="none",  # train-time: "none" (resize + centre crop) or "inception_crop".
    crop_area_min=0.05,  # smallest share of the image an inception crop keeps.
    train_filter=None,  # (feature, value): train only on examples where feature == value.
    extra_label_keys=(),  # more integer keys stacked after label_key: label [1 + K], -1 = none.
)

_PICK_SALT, _FLIP_SALT, _CROP_SALT = 1, 2, 3


def default_data_config(**overrides: Any) -> ml_collections.ConfigDict:
    """A `data` ConfigDict holding every field with its default, updated by `overrides`."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown data config fields {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    return ml_collections.ConfigDict({**DEFAULTS, **overrides})


def hide_accelerators_from_tf() -> None:
    """Keep TF off the GPUs/TPUs so JAX owns their memory; a no-op once TF has started."""
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):
            pass


def _get(cfg, key: str):
    """Field `key` of the data config, or its default when missing, None or ""."""
    value = cfg.get(key, None) if hasattr(cfg, "get") else getattr(cfg, key, None)
    return DEFAULTS[key] if value is None or (isinstance(value, str) and not value) else value


# ----------------------------------------------------------------------------- builder


def _is_builtin(name: str) -> bool:
    return name.split("/")[0].split(":")[0] == BUILTIN


def _builder(cfg, **kwargs) -> tfds.core.DatasetBuilder:
    """The TFDS builder named by the config, with a clear error for unknown names."""
    name = _get(cfg, "name")
    if not name:
        raise ValueError("The data config has no `name`; set e.g. data.name = 'captioned_shapes/32px'.")
    if _is_builtin(name):
        from multimodal_jax.data import shapes_builder  # noqa: F401  (registers the builder)
    try:
        builder = tfds.builder(name, data_dir=_get(cfg, "data_dir"), **kwargs)
    except ValueError as e:  # DatasetNotFoundError and unknown builder configs.
        raise ValueError(
            f"Unknown TFDS dataset {name!r} (data.name): {str(e).splitlines()[0]} "
            f"Use a registered TFDS name with an optional config and version, e.g. 'cifar10', "
            f"'coco_captions', or the built-in '{BUILTIN}/32px'."
        ) from None
    if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f"Dataset {name!r} in {builder.data_dir} was prepared as array_record, which tf.data "
            f"cannot read. Prepare it again with tfrecord: "
            f"`tfds build {name} --file_format=tfrecord --data_dir=...`."
        )
    return builder


def _not_prepared_error(cfg, builder) -> FileNotFoundError:
    name = _get(cfg, "name")
    return FileNotFoundError(
        f"Dataset {name!r} is not prepared in {builder.data_dir} (data.data_dir="
        f"{_get(cfg, 'data_dir')!r}). Nothing is downloaded at training time: prepare it once "
        f"on a machine with the source files, e.g. `tfds build {name} --data_dir=DIR` (or "
        f"`tfds.builder({name!r}, data_dir=DIR).download_and_prepare()`, with "
        f"download_config=tfds.download.DownloadConfig(manual_dir=...) for manual datasets), "
        f"then set data.data_dir=DIR."
    )


def ensure_prepared(data_cfg) -> None:
    """Prepares the built-in captioned_shapes if it is missing; any other missing dataset is an
    error saying how to prepare it. Call it on one process, then wait on the others."""
    builtin = _is_builtin(_get(data_cfg, "name"))
    builder = _builder(data_cfg, **({"file_format": "tfrecord"} if builtin else {}))  # tf.data-readable
    if builder.is_prepared():
        return
    if not builtin:
        raise _not_prepared_error(data_cfg, builder)
    builder.download_and_prepare()


def _read(builder, split: str, cfg) -> tf.data.Dataset:
    """The split in file order, with the image left encoded (decoded later, after slicing)."""
    image_key = _get(cfg, "image_key")
    feature = _lookup(builder.info.features, image_key, "data.image_key", cfg)
    decoders = {image_key: tfds.decode.SkipDecoding()} if isinstance(feature, tfds.features.Image) else None
    try:
        return builder.as_dataset(
            split=split, shuffle_files=False, decoders=decoders,
            read_config=tfds.ReadConfig(add_tfds_id=False, skip_prefetch=True, try_autocache=False),
        )
    except AssertionError as e:
        if "could not find data" in str(e):
            raise _not_prepared_error(cfg, builder) from None
        raise


# ----------------------------------------------------------------------------- features


def _feature_paths(tree, prefix: str = "") -> list[str]:
    """All leaf paths "a/b" of a nested features dict, for error messages."""
    paths = []
    for key in tree.keys():
        node = tree[key]
        node = getattr(node, "feature", node)  # Sequence -> its inner feature(s)
        if hasattr(node, "keys"):
            paths += _feature_paths(node, f"{prefix}{key}/")
        else:
            paths.append(f"{prefix}{key}")
    return paths


def _lookup_path(tree, path: str):
    """Value at "a/b" in a nested dict; keys that contain "/" themselves are tried first."""
    tree = getattr(tree, "feature", tree)
    if not hasattr(tree, "keys"):
        raise KeyError(path)
    if path in tree.keys():
        return tree[path]
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        head = "/".join(parts[:i])
        if head in tree.keys():
            return _lookup_path(tree[head], "/".join(parts[i:]))
    raise KeyError(path)


def _lookup(tree, path: str, what: str, cfg):
    """`_lookup_path` with an error that names the setting and the available features."""
    try:
        return _lookup_path(tree, path)
    except KeyError:
        raise ValueError(
            f"{what}={path!r} is not a feature of dataset {_get(cfg, 'name')!r}. "
            f"Available features: {', '.join(_feature_paths(tree))}."
        ) from None


def _class_names(builder, cfg) -> list[str] | None:
    """Class names for caption templates: the config's, else the ClassLabel's."""
    if _get(cfg, "class_names") is not None:
        return list(_get(cfg, "class_names"))
    feature = _lookup(builder.info.features, _get(cfg, "label_key"), "data.label_key", cfg)
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(
            f"data.label_key={_get(cfg, 'label_key')!r} of {_get(cfg, 'name')!r} has no class "
            f"names, so captions cannot be made from templates; set data.class_names or data.text_key."
        )
    return [n.replace("_", " ") for n in names]


def _template_table(builder, cfg) -> tf.Tensor | None:
    """String table [templates, classes] of captions made from class names, or None."""
    if _get(cfg, "text_key") or not _get(cfg, "label_key"):
        return None
    names = _class_names(builder, cfg)
    return tf.constant([[t.format(n) for n in names] for t in _get(cfg, "caption_templates")])


def _validate(builder, cfg) -> None:
    """Early, clear errors for keys that are not features of the dataset, or of the wrong kind."""
    info = builder.info.features.get_tensor_info()
    wanted = {  # field: (allowed ranks, is a string, what it must be)
        "image_key": ((3,), False, "an image [H, W, C]"),
        "text_key": ((0, 1), True, "a string or a list of strings"),
        "label_key": ((0,), False, "a scalar integer class"),
    }
    checks = [(f"data.{field}", _get(cfg, field), spec) for field, spec in wanted.items()]
    checks += [("data.extra_label_keys", key, wanted["label_key"])
               for key in _get(cfg, "extra_label_keys")]
    for setting, key, (ranks, is_string, what) in checks:
        if not key:
            continue
        tensor = _lookup(info, key, setting, cfg)
        if len(tensor.shape) not in ranks or is_string != (tensor.tf_dtype == tf.string):
            raise ValueError(
                f"{setting}={key!r} of {_get(cfg, 'name')!r} is {tensor}; it must be {what}."
            )
    augment.check_augment(_get(cfg, "augment"))


# ----------------------------------------------------------------------------- per-example


def _example_seed(seed: int, index: tf.Tensor, salt: int) -> tf.Tensor:
    """A stateless seed for example `index` of the global stream (same for any process count)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, salt)


def _pick(options: tf.Tensor, seed: int, index, random: bool) -> tf.Tensor:
    """One element of a 1-D string tensor: seeded per example when `random`, else the first."""
    n = tf.shape(options)[0]
    padded = tf.concat([options, tf.constant([""])], axis=0)  # "" when there are none.
    if not random:
        return padded[0]
    u = tf.random.stateless_uniform([], _example_seed(seed, index, _PICK_SALT), 0, tf.int32.max, tf.int32)
    return padded[u % tf.maximum(n, 1)]


def _select(ex, index, cfg, table, seed: int, random: bool) -> dict:
    """Keep only the fields the model needs, with one text per example (cheap: no decoding)."""
    out = {"_index": index, "image": _lookup_path(ex, _get(cfg, "image_key"))}
    label_key, text_key = _get(cfg, "label_key"), _get(cfg, "text_key")
    if label_key:
        out["label"] = tf.cast(_lookup_path(ex, label_key), tf.int32)
    if text_key:
        text = _lookup_path(ex, text_key)
        out["text"] = _pick(tf.reshape(text, [-1]), seed, index, random) if text.shape.rank else text
    elif table is not None:
        out["text"] = _pick(table[:, out["label"]], seed, index, random)
    if label_key and _get(cfg, "extra_label_keys"):  # multi-label: [1 + K] class ids, -1 = none
        out["label"] = tf.stack([out["label"]] + [
            tf.cast(_lookup_path(ex, k), tf.int32) for k in _get(cfg, "extra_label_keys")])
    return out


def _resize_and_centre_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize so the shorter side is `size` (any input size), then crop the centre square."""
    image = tf.cast(image, tf.float32)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    scale = size / tf.cast(tf.minimum(h, w), tf.float32)
    new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32))
    image = tf.cond(
        tf.logical_and(tf.equal(new_h, h), tf.equal(new_w, w)),
        lambda: image,
        lambda: tf.image.resize(image, [new_h, new_w], method="bilinear", antialias=True),
    )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return tf.ensure_shape(image[top:top + size, left:left + size], [size, size, 3])


def _preprocess(ex, cfg, tokenizer, max_len: int | None, seed: int, train: bool) -> dict:
    """Decode, resize, (optionally flip), normalise the image; tokenise the text."""
    image = ex["image"]
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    elif image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    augmented = augment.train_image(
        image, int(_get(cfg, "image_size")), _get(cfg, "augment"),
        _example_seed(seed, ex["_index"], _CROP_SALT), float(_get(cfg, "crop_area_min")),
    ) if train else None
    image = augmented if augmented is not None else _resize_and_centre_crop(image, int(_get(cfg, "image_size")))
    if train and _get(cfg, "flip"):
        image = tf.image.stateless_random_flip_left_right(image, _example_seed(seed, ex["_index"], _FLIP_SALT))
    mean = tf.constant(_get(cfg, "mean"), tf.float32) * 255.0
    std = tf.constant(_get(cfg, "std"), tf.float32) * 255.0
    out = {"image": (image - mean) / std}
    if "label" in ex:
        out["label"] = ex["label"]
    if tokenizer is not None and "text" in ex:
        tokens = tf.cast(tokenizer.tf_encode(ex["text"], max_len), tf.int32)
        out["tokens"] = tf.ensure_shape(tokens, [max_len])
    return out


# ----------------------------------------------------------------------------- iterators


def _processes(process_index, process_count) -> tuple[int, int]:
    """This process's index and the process count (from JAX when not given)."""
    if process_index is None or process_count is None:
        import jax  # only when the caller did not say; keeps this module free of JAX otherwise.

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} is not in [0, process_count={process_count}).")
    return process_index, process_count


def _local_batch_size(global_batch_size: int, process_count: int) -> int:
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise ValueError(
            f"The global batch size {global_batch_size} must be a positive multiple of the "
            f"number of processes ({process_count}); each process gets an equal slice. "
            f"Change batch_size to a multiple of {process_count}."
        )
    return global_batch_size // process_count


def _max_len(cfg, tokenizer) -> int | None:
    """Token length from data.max_len, else the tokenizer's `max_len` attribute."""
    if tokenizer is None:
        return None
    max_len = _get(cfg, "max_len") or getattr(tokenizer, "max_len", None)
    if not max_len:
        raise ValueError("No token length: set data.max_len (or give the tokenizer a `max_len`).")
    return int(max_len)


def _options() -> tf.data.Options:
    """Deterministic order (same stream every run), autotuned parallelism."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return options


def _parallel_map(ds, fn):
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _setup(data_cfg, tokenizer):
    """Common start of both iterators: TF off accelerators, builder, validation, templates."""
    hide_accelerators_from_tf()
    builder = _builder(data_cfg)
    _validate(builder, data_cfg)
    return builder, _template_table(builder, data_cfg), _max_len(data_cfg, tokenizer)


def make_train_dataset(
    data_cfg, tokenizer, global_batch_size: int, seed: int, start_step: int = 0,
    process_index: int | None = None, process_count: int | None = None,
) -> tf.data.Dataset:
    """The endless train tf.data.Dataset of this process's local batches (see module doc)."""
    process_index, process_count = _processes(process_index, process_count)
    local = _local_batch_size(global_batch_size, process_count)
    builder, table, max_len = _setup(data_cfg, tokenizer)
    ds = _read(builder, _get(data_cfg, "train_split"), data_cfg)
    if _get(data_cfg, "train_filter"):  # e.g. ("num_objects", 1): a fixed subset, before shuffling
        _lookup(builder.info.features, _get(data_cfg, "train_filter")[0], "data.train_filter", data_cfg)
        ds = ds.filter(_equals(*_get(data_cfg, "train_filter")))
    ds = ds.repeat().shuffle(int(_get(data_cfg, "shuffle_buffer")), seed=seed).enumerate()
    ds = ds.skip(start_step * global_batch_size)  # = skipping start_step global batches, cheaper
    ds = _parallel_map(ds, lambda i, ex: _select(ex, i, data_cfg, table, seed, random=True))
    ds = ds.batch(global_batch_size, drop_remainder=True)
    lo, hi = process_index * local, (process_index + 1) * local
    ds = ds.map(lambda batch: {k: v[lo:hi] for k, v in batch.items()}).unbatch()
    ds = _parallel_map(ds, lambda ex: _preprocess(ex, data_cfg, tokenizer, max_len, seed, train=True))
    ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options())


def make_train_iterator(
    data_cfg, tokenizer, global_batch_size: int, seed: int, start_step: int = 0,
    process_index: int | None = None, process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless numpy batches {"image", "tokens", "label"?} for this process; `start_step=k`
    continues the exact stream an uninterrupted run would have at step k."""
    return make_train_dataset(
        data_cfg, tokenizer, global_batch_size, seed, start_step, process_index, process_count
    ).as_numpy_iterator()


def _equals(feature: str, value):
    """Record predicate `ex[feature] == value` (all elements, for non-scalar features)."""
    def predicate(ex):
        x = _lookup_path(ex, feature)
        return tf.reduce_all(tf.equal(x, tf.constant(value, dtype=x.dtype)))
    return predicate


def _count(ds: tf.data.Dataset) -> int:
    """Number of examples: the known cardinality, else one pass over the undecoded records."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda c, _: c + 1))


def _pad_dataset(spec, count: int) -> tf.data.Dataset:
    """`count` all-zero examples shaped like `spec`, with mask False."""
    zeros = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)
    return tf.data.Dataset.from_tensors({**zeros, "mask": tf.constant(False)}).repeat(count)


def make_eval_dataset(
    data_cfg, split: str, tokenizer, global_batch_size: int,
    process_index: int | None = None, process_count: int | None = None,
    filter: tuple[str, Any] | None = None,  # noqa: A002  (the agreed argument name)
) -> tf.data.Dataset:
    """One pass over `split` in order; this process's contiguous part, padded with mask=False so
    every process yields the same number of local batches. `filter=(feature, value)` keeps
    examples whose feature equals value (e.g. ("num_objects", 1))."""
    process_index, process_count = _processes(process_index, process_count)
    local = _local_batch_size(global_batch_size, process_count)
    builder, table, max_len = _setup(data_cfg, tokenizer)
    ds = _read(builder, split, data_cfg)
    if filter is not None:
        _lookup(builder.info.features, filter[0], "eval filter feature", data_cfg)
        ds = ds.filter(_equals(*filter))
    n = _count(ds)
    if n == 0:
        raise ValueError(f"Split {split!r} of {_get(data_cfg, 'name')!r} has no examples (filter={filter}).")
    per_process = math.ceil(n / process_count)
    start = process_index * per_process
    mine = max(0, min(per_process, n - start))
    num_batches = math.ceil(per_process / local)
    ds = ds.enumerate().skip(start).take(mine)
    ds = _parallel_map(ds, lambda i, ex: _select(ex, i, data_cfg, table, 0, random=False))
    ds = _parallel_map(ds, lambda ex: _preprocess(ex, data_cfg, tokenizer, max_len, 0, train=False))
    ds = ds.map(lambda ex: {**ex, "mask": tf.constant(True)})
    ds = ds.concatenate(_pad_dataset({k: v for k, v in ds.element_spec.items() if k != "mask"},
                                     num_batches * local - mine))
    ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options())


def make_eval_iterator(
    data_cfg, split: str, tokenizer, global_batch_size: int,
    process_index: int | None = None, process_count: int | None = None,
    filter: tuple[str, Any] | None = None,  # noqa: A002
) -> Iterator[dict[str, np.ndarray]]:
    """Finite numpy batches {"image", "tokens", "label"?, "mask"} of `split` (see make_eval_dataset)."""
    return make_eval_dataset(
        data_cfg, split, tokenizer, global_batch_size, process_index, process_count, filter
    ).as_numpy_iterator()


def ensure_prepared_once(data_cfg) -> None:
    """`ensure_prepared` on process 0 only, the other processes waiting for it (no races)."""
    if jax.process_index() == 0:
        ensure_prepared(data_cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("dataset prepared")
