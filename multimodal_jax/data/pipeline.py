"""TFDS -> tf.data -> per-process numpy batches; the global example stream is the same for any
number of processes, and resuming at step k continues it exactly.

Train stream: read the split in file order -> repeat -> seeded shuffle -> number every example
-> skip ``start_step`` global batches' worth -> GLOBAL batches of undecoded records -> this
process's slice -> decode, resize, normalise, tokenise -> local batches. Only the slice a process
keeps is decoded; per-example randomness (caption choice, flip) is seeded by (seed, example number).
"""

from __future__ import annotations

import logging
import math
from typing import Any
from typing import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from multimodal_jax.data import augment
from multimodal_jax.data import datasets
from multimodal_jax.data import mixture
from multimodal_jax.data import records
from multimodal_jax.data import tfrecord_shards

log = logging.getLogger(__name__)

_PICK_SALT, _FLIP_SALT, _CROP_SALT = 1, 2, 3


def _read(builder, split: str, cfg) -> tf.data.Dataset:
    """The split in file order, with the image left encoded (decoded later, after slicing)."""
    image_key = datasets.field(cfg, "image_key")
    feature = _lookup(builder.info.features, image_key, "data.image_key", cfg)
    decoders = {image_key: tfds.decode.SkipDecoding()} if isinstance(feature, tfds.features.Image) else None
    try:
        return records.read(builder, split, decoders)
    except AssertionError as e:
        if "could not find data" in str(e):
            raise datasets.not_prepared_error(cfg, builder) from None
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
    """``_lookup_path`` with an error that names the setting and the available features."""
    try:
        return _lookup_path(tree, path)
    except KeyError:
        raise ValueError(
            f"{what}={path!r} is not a feature of dataset {datasets.field(cfg, 'name')!r}. "
            f"Available features: {', '.join(_feature_paths(tree))}."
        ) from None


def _class_names(builder, cfg) -> list[str] | None:
    """Class names for caption templates: the config's, else the ClassLabel's."""
    if datasets.field(cfg, "class_names") is not None:
        return list(datasets.field(cfg, "class_names"))
    feature = _lookup(builder.info.features, datasets.field(cfg, "label_key"), "data.label_key", cfg)
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(
            f"data.label_key={datasets.field(cfg, 'label_key')!r} of {datasets.field(cfg, 'name')!r} has no class "
            f"names, so captions cannot be made from templates; set data.class_names or data.text_key."
        )
    return [n.replace("_", " ") for n in names]


def _template_table(builder, cfg) -> tf.Tensor | None:
    """String table [templates, classes] of captions made from class names, or None."""
    if datasets.field(cfg, "text_key") or not datasets.field(cfg, "label_key"):
        return None
    names = _class_names(builder, cfg)
    return tf.constant([[t.format(n) for n in names] for t in datasets.field(cfg, "caption_templates")])


def _validate(builder, cfg) -> None:
    """Early, clear errors for keys that are not features of the dataset, or of the wrong kind."""
    info = builder.info.features.get_tensor_info()
    wanted = {  # field: (allowed ranks, is a string, what it must be)
        "image_key": ((3,), False, "an image [H, W, C]"),
        "text_key": ((0, 1), True, "a string or a list of strings"),
        "label_key": ((0,), False, "a scalar integer class"),
    }
    checks = [(f"data.{field}", datasets.field(cfg, field), spec) for field, spec in wanted.items()]
    checks += [("data.extra_label_keys", key, wanted["label_key"])
               for key in datasets.field(cfg, "extra_label_keys")]
    for setting, key, (ranks, is_string, what) in checks:
        if not key:
            continue
        tensor = _lookup(info, key, setting, cfg)
        if len(tensor.shape) not in ranks or is_string != (tensor.tf_dtype == tf.string):
            raise ValueError(
                f"{setting}={key!r} of {datasets.field(cfg, 'name')!r} is {tensor}; it must be {what}."
            )
    augment.check_augment(datasets.field(cfg, "augment"))


# ----------------------------------------------------------------------------- per-example


def _example_seed(seed: int, index: tf.Tensor, salt: int) -> tf.Tensor:
    """A stateless seed for example ``index`` of the global stream (same for any process count)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, salt)


def _pick(options: tf.Tensor, seed: int, index, random: bool) -> tf.Tensor:
    """One non-empty element of a 1-D string tensor: seeded per example when ``random``, else
    the first. An empty string is no text (the built-in multilingual dataset's withheld
    captions); a list without empty strings is picked from exactly as before."""
    options = tf.boolean_mask(options, tf.strings.length(options) > 0)
    n = tf.shape(options)[0]
    padded = tf.concat([options, tf.constant([""])], axis=0)  # "" when there are none.
    if not random:
        return padded[0]
    u = tf.random.stateless_uniform([], _example_seed(seed, index, _PICK_SALT), 0, tf.int32.max, tf.int32)
    return padded[u % tf.maximum(n, 1)]


def _model_fields(ex, cfg, table) -> dict:
    """Only the fields the model needs (cheap: no decoding): the image, the label, and the
    candidate texts as a 1-D string tensor (a caption list, one caption, or the label's row of
    the template table)."""
    out = {"image": _lookup_path(ex, datasets.field(cfg, "image_key"))}
    label_key, text_key = datasets.field(cfg, "label_key"), datasets.field(cfg, "text_key")
    if label_key:
        out["label"] = tf.cast(_lookup_path(ex, label_key), tf.int32)
    if text_key:
        out["texts"] = tf.reshape(_lookup_path(ex, text_key), [-1])
    elif table is not None:
        out["texts"] = table[:, out["label"]]
    if label_key and datasets.field(cfg, "extra_label_keys"):  # multi-label: [1 + K] class ids, -1 = none
        out["label"] = tf.stack([out["label"]] + [
            tf.cast(_lookup_path(ex, k), tf.int32) for k in datasets.field(cfg, "extra_label_keys")])
    return out


def _pick_text(ex: dict, index, seed: int, random: bool) -> dict:
    """``ex`` numbered ``index`` in the global stream, with one of its texts (seeded per
    example when ``random``, else the first)."""
    out = {k: v for k, v in ex.items() if k != "texts"}
    out["_index"] = index
    if "texts" in ex:
        out["text"] = _pick(ex["texts"], seed, index, random)
    return out


def _select(ex, index, cfg, table, seed: int, random: bool) -> dict:
    """``_model_fields`` then ``_pick_text``: one example as the model reads it, before decoding."""
    return _pick_text(_model_fields(ex, cfg, table), index, seed, random)


def _resize_and_centre_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize so the shorter side is ``size`` (any input size), then crop the centre square."""
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


def _decode(image: tf.Tensor) -> tf.Tensor:
    """An encoded image (PNG, JPEG, GIF's first frame, BMP) or decoded pixels -> RGB [H, W, 3]."""
    if image.dtype == tf.string:
        return tf.io.decode_image(image, channels=3, expand_animations=False)
    if image.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(image)
    return image


def _normalise(image: tf.Tensor, cfg) -> tf.Tensor:
    """Pixels in [0, 255] -> the data config's normalisation (``mean`` / ``std`` of [0, 1])."""
    mean = tf.constant(datasets.field(cfg, "mean"), tf.float32) * 255.0
    std = tf.constant(datasets.field(cfg, "std"), tf.float32) * 255.0
    return (image - mean) / std


def eval_image(image: tf.Tensor, cfg) -> tf.Tensor:
    """One image as evaluation sees it: decoded, resized (shorter side) and centre-cropped to
    ``image_size``, normalised; float32 ``[size, size, 3]``. ``image``: encoded bytes (a
    tf.string scalar) or uint8 pixels ``[H, W, 1 or 3]``. What ``train.predict`` and
    ``multimodal_jax.inference`` feed the model, so that files get the pipeline's numbers."""
    size = int(datasets.field(cfg, "image_size"))
    return _normalise(_resize_and_centre_crop(_decode(image), size), cfg)


def map_eval_images(images: tf.data.Dataset, cfg) -> tf.data.Dataset:
    """``(key, image) -> (key, eval_image(image))`` over a dataset of a user's images, mapped as
    the evaluation stream maps its examples (same parallel map, same options), so that an image
    file gives bitwise the numbers its copy in a dataset gives. An image that fails to decode
    is dropped; its key is missing from the output."""
    ds = _parallel_map(images, lambda key, image: (key, eval_image(image, cfg)))
    return ds.ignore_errors().with_options(_options())


def _preprocess(ex, cfg, tokenizer, max_len: int | None, seed: int, train: bool) -> dict:
    """Decode, resize, (optionally flip), normalise the image; tokenise the text."""
    image = _decode(ex["image"])
    augmented = augment.train_image(
        image, int(datasets.field(cfg, "image_size")), datasets.field(cfg, "augment"),
        _example_seed(seed, ex["_index"], _CROP_SALT), float(datasets.field(cfg, "crop_area_min")),
    ) if train else None
    if augmented is None:
        augmented = _resize_and_centre_crop(image, int(datasets.field(cfg, "image_size")))
    image = augmented
    if train and datasets.field(cfg, "flip"):
        image = tf.image.stateless_random_flip_left_right(image, _example_seed(seed, ex["_index"], _FLIP_SALT))
    out = {"image": _normalise(image, cfg)}
    if not train:  # which example of the (filtered) split a row is, for joining other fields
        out["index"] = ex["_index"]
    for key in ("label", "_repeats"):
        if key in ex:
            out[key] = ex[key]
    if tokenizer is not None and "text" in ex:
        tokens = tf.cast(tokenizer.tf_encode(ex["text"], max_len), tf.int32)
        out["tokens"] = tf.ensure_shape(tokens, [max_len])
    return out


# ----------------------------------------------------------------------------- iterators


def _processes(process_index, process_count) -> tuple[int, int]:
    """This process's index and the process count (from JAX when not given)."""
    if process_index is None or process_count is None:
        import jax  # noqa: PLC0415 - only when the caller did not say: this module needs no JAX

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
    """Token length from data.max_len, else the tokenizer's ``max_len`` attribute."""
    if tokenizer is None:
        return None
    max_len = datasets.field(cfg, "max_len") or getattr(tokenizer, "max_len", None)
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
    datasets.hide_accelerators_from_tf()
    builder = datasets.builder(data_cfg)
    _validate(builder, data_cfg)
    return builder, _template_table(builder, data_cfg), _max_len(data_cfg, tokenizer)


def _component(part, index: int, count: int, seed: int) -> tf.data.Dataset:
    """One dataset's endless stream: its train split in file order, filtered, repeated,
    shuffled with its own seed (``seed`` itself for the first or only one), each example
    ``_model_fields`` with an ``_id`` unique over the ``count`` datasets (its file position)."""
    datasets.hide_accelerators_from_tf()
    builder = datasets.builder(part)
    _validate(builder, part)
    table = _template_table(builder, part)
    ds = _read(builder, datasets.field(part, "train_split"), part).enumerate()
    if datasets.field(part, "train_filter"):  # e.g. ("num_objects", 1): a fixed subset, before shuffling
        _lookup(builder.info.features, datasets.field(part, "train_filter")[0], "data.train_filter", part)
        keep = _equals(*datasets.field(part, "train_filter"))
        ds = ds.filter(lambda position, ex: keep(ex))
    ds = ds.repeat().shuffle(int(datasets.field(part, "shuffle_buffer")), seed=seed + index)
    return _parallel_map(ds, lambda position, ex: {
        **_model_fields(ex, part, table), "_id": position * count + index})


def _examples(data_cfg, seed: int) -> tf.data.Dataset:
    """The global example stream before numbering: the one dataset's, or the mixture's, where
    example k comes from the dataset ``mixture.choices`` draws for (seed, k)."""
    parts = mixture.components(data_cfg)
    streams = [_component(part, i, len(parts), seed) for i, (part, _) in enumerate(parts)]
    if len(streams) == 1:
        return streams[0]
    try:
        return tf.data.Dataset.choose_from_datasets(streams, mixture.choices(seed, [w for _, w in parts]))
    except (TypeError, ValueError) as error:
        specs = "; ".join(f"{part.name}: {stream.element_spec}" for (part, _), stream in zip(parts, streams))
        raise ValueError(f"The datasets of config.data.mixture give different examples for the "
                         f"same data fields ({specs}): each needs the features image_key, "
                         f"text_key and label_key name, of the same kinds. {error}") from None


def _mark_repeats(batch: dict) -> dict:
    """A global batch without ``_id``, with ``_repeats``: how many of its examples are copies
    of another one in it (the same for every example, so each process's slice carries it)."""
    ids = batch.pop("_id")
    size = tf.shape(ids, out_type=tf.int64)[0]
    repeats = size - tf.shape(tf.unique(ids).y, out_type=tf.int64)[0]
    return {**batch, "_repeats": tf.fill([size], repeats)}


def make_train_dataset(
    data_cfg, tokenizer, global_batch_size: int, seed: int, start_step: int = 0,
    process_index: int | None = None, process_count: int | None = None,
) -> tf.data.Dataset:
    """The endless train tf.data.Dataset of this process's local batches (see module doc); each
    example carries ``_repeats``, the number of repeated examples in its global batch."""
    process_index, process_count = _processes(process_index, process_count)
    local = _local_batch_size(global_batch_size, process_count)
    max_len = _max_len(data_cfg, tokenizer)
    ds = _examples(data_cfg, seed).enumerate()
    ds = ds.skip(start_step * global_batch_size)  # = skipping start_step global batches, cheaper
    ds = _parallel_map(ds, lambda i, ex: _pick_text(ex, i, seed, random=True))
    ds = ds.batch(global_batch_size, drop_remainder=True).map(_mark_repeats)
    lo, hi = process_index * local, (process_index + 1) * local
    ds = ds.map(lambda batch: {k: v[lo:hi] for k, v in batch.items()}).unbatch()
    ds = _parallel_map(ds, lambda ex: _preprocess(ex, data_cfg, tokenizer, max_len, seed, train=True))
    ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options())


def make_train_iterator(
    data_cfg, tokenizer, global_batch_size: int, seed: int, start_step: int = 0,
    process_index: int | None = None, process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless numpy batches {"image", "tokens", "label"?} for this process; ``start_step=k``
    continues the exact stream an uninterrupted run would have at step k. The first global
    batch that holds an example twice is reported (a warning on process 0); a damaged shard
    raises ``tfrecord_shards.DamagedShard`` naming it."""
    process_index, process_count = _processes(process_index, process_count)
    ds = make_train_dataset(
        data_cfg, tokenizer, global_batch_size, seed, start_step, process_index, process_count)
    reads = [(part, [datasets.field(part, "train_split")]) for part, _ in mixture.components(data_cfg)]
    return _reporting_repeats(numpy_iterator(ds, reads), start_step, global_batch_size, data_cfg,
                              report=process_index == 0)


def numpy_iterator(ds: tf.data.Dataset, reads: list[tuple[Any, list[str]]]) -> Iterator[Any]:
    """``ds.as_numpy_iterator()``, with a damaged shard (TensorFlow's ``DataLossError``, which
    names no file) reported as ``tfrecord_shards.DamagedShard`` naming it; ``reads``: the
    ``(data config, splits)`` that ``ds`` reads."""
    batches = ds.as_numpy_iterator()
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.NotFoundError) as error:
            for data_cfg, splits in reads:
                found = datasets.builder(data_cfg)
                damaged = tfrecord_shards.damaged_error(
                    found, splits, datasets.field(data_cfg, "name"),
                    datasets.rebuild_advice(data_cfg, found), error)
                if damaged is not error:
                    raise damaged from None
            raise
        yield batch


def _reporting_repeats(batches, start_step: int, global_batch_size: int, data_cfg, report: bool):
    """``batches`` without their ``_repeats``; the first batch with repeats is logged."""
    for step, batch in enumerate(batches, start=start_step + 1):
        repeats = int(batch.pop("_repeats")[0])
        if repeats and report:
            report = False
            log.warning(
                "Step %d: %d of the %d examples of the global batch are copies of others in it "
                "(a contrastive loss counts them as negatives of their own positives). The "
                "train split is small for the batch, or the shuffle buffer "
                "(data.shuffle_buffer=%s) spans epochs; use a larger split or a smaller batch. "
                "Later batches with repeats are not reported.", step, repeats,
                global_batch_size, datasets.field(data_cfg, "shuffle_buffer"))
        yield batch


def batch_spec(data_cfg, max_len: int | None, batch_size: int) -> dict[str, tuple[tuple, Any]]:
    """``{key: (shape, dtype)}`` of the train batches ``make_train_iterator`` yields for a
    tokenizer of ``max_len`` tokens (None: no tokenizer), read from the config alone (no
    dataset is opened): what an ahead-of-time compile of the train step is given."""
    size = int(datasets.field(data_cfg, "image_size"))
    spec = {"image": ((batch_size, size, size, 3), np.float32)}
    label_key, text_key = datasets.field(data_cfg, "label_key"), datasets.field(data_cfg, "text_key")
    if label_key:
        extra = len(datasets.field(data_cfg, "extra_label_keys"))
        spec["label"] = ((batch_size, 1 + extra) if extra else (batch_size,), np.int32)
    if max_len and (text_key or label_key):
        spec["tokens"] = ((batch_size, int(datasets.field(data_cfg, "max_len") or max_len)), np.int32)
    return spec


def _equals(feature: str, value):
    """Record predicate ``ex[feature] == value`` (all elements, for non-scalar features)."""
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
    """``count`` all-zero examples shaped like ``spec``, with mask False."""
    zeros = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)
    return tf.data.Dataset.from_tensors({**zeros, "mask": tf.constant(False)}).repeat(count)


def make_eval_dataset(
    data_cfg, split: str, tokenizer, global_batch_size: int,
    process_index: int | None = None, process_count: int | None = None,
    filter: tuple[str, Any] | None = None,  # noqa: A002  (as TFDS and tf.data name it)
) -> tf.data.Dataset:
    """One pass over ``split`` in order; this process's contiguous part, padded with mask=False so
    every process yields the same number of local batches. ``filter=(feature, value)`` keeps
    examples whose feature equals value (e.g. ("num_objects", 1)). Each row's ``index`` is its
    place in the (filtered) split: rows gathered from several processes are not in file order."""
    process_index, process_count = _processes(process_index, process_count)
    local = _local_batch_size(global_batch_size, process_count)
    builder, table, max_len = _setup(data_cfg, tokenizer)
    ds = _read(builder, split, data_cfg)
    if filter is not None:
        _lookup(builder.info.features, filter[0], "eval filter feature", data_cfg)
        ds = ds.filter(_equals(*filter))
    n = _count(ds)
    if n == 0:
        raise ValueError(f"Split {split!r} of {datasets.field(data_cfg, 'name')!r} has no examples (filter={filter}).")
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


def read_features(data_cfg, split: str, keys: tuple[str, ...],
                  filter: tuple[str, Any] | None = None) -> dict[str, np.ndarray]:  # noqa: A002
    """Features ``keys`` of every example of ``split`` (after ``filter``), numbered as
    make_eval_dataset numbers its rows (``index``); images stay undecoded, so this is cheap."""
    ds = _read(datasets.builder(data_cfg), split, data_cfg)
    if filter is not None:
        ds = ds.filter(_equals(*filter))
    ds = ds.map(lambda ex: {k: _lookup_path(ex, k) for k in keys})
    columns = {k: [] for k in keys}
    for example in tfds.as_numpy(ds):
        for k in columns:
            columns[k].append(example[k])
    return {k: np.asarray(v) for k, v in columns.items()}


def make_eval_iterator(
    data_cfg, split: str, tokenizer, global_batch_size: int,
    process_index: int | None = None, process_count: int | None = None,
    filter: tuple[str, Any] | None = None,  # noqa: A002
) -> Iterator[dict[str, np.ndarray]]:
    """Finite numpy batches {"image", "tokens", "label"?, "index", "mask"} of ``split`` (see
    make_eval_dataset)."""
    ds = make_eval_dataset(data_cfg, split, tokenizer, global_batch_size, process_index,
                           process_count, filter)
    return numpy_iterator(ds, [(data_cfg, [split])])
