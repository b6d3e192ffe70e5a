"""A split's examples in file order as a ``tf.data.Dataset``, whichever format TFDS prepared it
in: tfrecord through ``as_dataset``; array_record (which ``tf.data`` cannot read) through TFDS's
random-access data source, its serialised records parsed by the dataset's own features, so the
examples are the ones ``as_dataset`` would give for the same data (tested bitwise).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

_CHUNK = 256  # records fetched per call into Python


def read(builder: tfds.core.DatasetBuilder, split: str, decoders=None) -> tf.data.Dataset:
    """The examples of ``split`` in file order, features decoded but those ``decoders`` skip."""
    if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
        return _array_record(builder, split, decoders)
    return builder.as_dataset(
        split=split, shuffle_files=False, decoders=decoders,
        read_config=tfds.ReadConfig(add_tfds_id=False, skip_prefetch=True, try_autocache=False),
    )


def _array_record(builder, split: str, decoders) -> tf.data.Dataset:
    """Records 0..n-1 of the random-access source, ``_CHUNK`` at a time, parsed in the graph."""
    source = builder.as_data_source(
        split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

    def fetch(indices: np.ndarray) -> np.ndarray:
        return np.array(source.__getitems__(indices.tolist()), dtype=object)

    def parse(record):
        return builder.info.features.deserialize_example(record, decoders=decoders)

    ds = tf.data.Dataset.range(len(source)).batch(_CHUNK)
    ds = ds.map(lambda ids: tf.ensure_shape(tf.numpy_function(fetch, [ids], tf.string), [None]))
    ds = ds.unbatch().map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.apply(tf.data.experimental.assert_cardinality(len(source)))
