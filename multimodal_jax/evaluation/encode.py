"""Runs a jitted function over a finite evaluation stream on the mesh and gathers the
results on every host: the one place where evaluation touches devices."""

from typing import Callable
from typing import Iterable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from multimodal_jax.data import device_input


def gather(x: jax.Array) -> np.ndarray:
    """A global array -> the full numpy value on every process."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def map_dataset(fn: Callable, params, batches: Iterable[dict], mesh: Mesh,
                inputs: tuple[str, ...], keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Applies ``fn(params, *[batch[k] for k in inputs])`` to every batch; returns its outputs
    (``"out"``) and the ``keep`` fields concatenated, with padding rows (``mask``) dropped."""
    outs, kept, masks = [], {k: [] for k in keep}, []
    for batch in batches:
        device_batch = device_input.shard_for_mesh({k: batch[k] for k in inputs + keep + ("mask",)}, mesh)
        outs.append(gather(fn(params, *[device_batch[k] for k in inputs])))
        for k in keep:
            kept[k].append(gather(device_batch[k]))
        masks.append(gather(device_batch["mask"]))
    mask = np.concatenate(masks).astype(bool)
    result = {"out": np.concatenate(outs)[mask]}
    result.update({k: np.concatenate(v)[mask] for k, v in kept.items()})
    return result
