"""Training on several prepared datasets at once: ``config.data.mixture = ((name, weight), ...)``.

Each dataset of the mixture is read with the data block's other fields (keys, split, templates)
and shuffled on its own; which dataset global example ``k`` comes from is a stateless draw from
``(seed, k)`` with the normalised weights. So the mixed stream stays a pure function of
(seed, step): a resumed run continues it exactly and every process count sees the same global
batches (``pipeline.py`` slices them after mixing). Evaluation reads ``data.name`` as before.
"""

from __future__ import annotations

import math

import ml_collections
import tensorflow as tf

_CHOICE_SALT = 4  # beside pipeline's per-example salts (caption pick, flip, crop)


def check(mixture, where: str = "config.data.mixture") -> None:
    """``mixture`` is empty (no mixture) or distinct ``(name, weight)`` pairs with non-empty
    names and positive finite weights; ``ValueError`` naming the entry and the fix otherwise."""
    example = f"{where}=\"(('my_photos', 0.7), ('captioned_shapes/32px', 0.3))\""
    if mixture is None or mixture == ():
        return
    if not isinstance(mixture, (tuple, list)):
        raise ValueError(f"{where} must be a list of (name, weight) pairs, got {mixture!r}; "
                         f"e.g. {example}.")
    for entry in mixture:
        ok = isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)
        if not ok or not entry[0] or not _positive_number(entry[1]):
            raise ValueError(f"{where} entry {entry!r} must be (name, weight) with a dataset "
                             f"name and a positive weight; e.g. {example}.")
    names = [entry[0] for entry in mixture]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where} names {repeated} more than once; give each dataset once with "
                         "the sum of its weights.")


def _positive_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def components(data_cfg) -> list[tuple[ml_collections.ConfigDict, float]]:
    """``(data config, weight)`` of each dataset the train stream reads, weights summing to 1:
    the mixture's datasets (each a copy of ``data_cfg`` with its ``name``), or ``data_cfg``
    alone when it has no mixture."""
    mixture = tuple(data_cfg.get("mixture", None) or ())
    if not mixture:
        return [(data_cfg, 1.0)]
    total = float(sum(weight for _, weight in mixture))
    parts = []
    for name, weight in mixture:
        part = ml_collections.ConfigDict(data_cfg.to_dict())
        part.name, part.mixture = name, ()
        parts.append((part, float(weight) / total))
    return parts


def choices(seed: int, weights: list[float]) -> tf.data.Dataset:
    """The endless stream of dataset indices: element ``k`` is drawn from ``weights`` by a
    stateless sampler seeded with ``(seed, k)`` (same for any process count, and for a resume)."""
    logits = tf.math.log(tf.constant([weights], tf.float32))

    def draw(k):
        key = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.cast(seed, tf.int64), k]), _CHOICE_SALT)
        return tf.random.stateless_categorical(logits, 1, key, dtype=tf.int64)[0, 0]

    return tf.data.Dataset.counter().map(draw)
