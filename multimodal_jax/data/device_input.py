"""Process-local numpy batches -> device arrays for the two drivers (pmap, mesh), and a
prefetcher that keeps a few batches in flight on the devices while the step runs."""

from __future__ import annotations

import collections
import itertools
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Iterator

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def _batch_size(batch: Any) -> int:
    """The common leading size of every leaf of a batch, with an error if they disagree."""
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"Every leaf of a batch needs the same leading (batch) size; got {sorted(sizes, key=str)}.")
    return sizes.pop()


def _not_divisible(batch_size: int, shards: int, what: str) -> ValueError:
    return ValueError(
        f"This process's batch of {batch_size} examples does not split evenly over its "
        f"{shards} {what}. Use a global batch size that is a multiple of the total number of "
        f"devices along the data axis ({shards} per process x {jax.process_count()} process(es))."
    )


def shard_for_pmap(batch: Any, local_device_count: int | None = None) -> Any:
    """[B, ...] leaves -> [n, B/n, ...] arrays, slice i on local device i, ready for ``jax.pmap``.

    The arrays carry the sharding pmap itself uses (a 1-D mesh over the local devices), so pmap
    takes them as they are, without a copy (checked with buffer donation on JAX 0.10).
    """
    n = jax.local_device_count() if local_device_count is None else local_device_count
    devices = jax.local_devices()[:n]
    if len(devices) < n:
        raise ValueError(f"local_device_count={n}, but this process has only {len(devices)} devices.")
    size = _batch_size(batch)
    if size % n:
        raise _not_divisible(size, n, "local devices")
    sharding = NamedSharding(Mesh(np.array(devices), (DATA_AXIS,)), P(DATA_AXIS))

    def put(x):
        x = np.asarray(x)
        return jax.device_put(x.reshape((n, size // n) + x.shape[1:]), sharding)

    return jax.tree.map(put, batch)


def _local_data_shards(mesh: Mesh) -> int:
    """How many distinct slices of the data axis this process's devices hold."""
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"The mesh has axes {mesh.axis_names}; the input pipeline shards over a {DATA_AXIS!r} axis.")
    axis = mesh.axis_names.index(DATA_AXIS)
    me = jax.process_index()
    return len({idx[axis] for idx, d in np.ndenumerate(mesh.devices) if d.process_index == me})


def shard_for_mesh(batch: Any, mesh: Mesh) -> Any:
    """Process-local [B, ...] leaves -> global jax.Arrays sharded NamedSharding(mesh, P("data"));
    the global batch is the concatenation of every process's batch in process order."""
    shards = _local_data_shards(mesh)
    size = _batch_size(batch)
    if size % shards:
        raise _not_divisible(size, shards, f"slices of the mesh's {DATA_AXIS!r} axis")
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def prefetch(iterator: Iterable[Any], put_fn: Callable[[Any], Any], size: int = 2) -> Iterator[Any]:
    """Yields put_fn(batch) for each batch; while the caller works on one, the next ``size`` are
    already being transferred (device_put is asynchronous, so copies overlap the step)."""
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}.")
    iterator = iter(iterator)
    queue = collections.deque(put_fn(b) for b in itertools.islice(iterator, size))
    while queue:
        ready = queue.popleft()
        queue.extend(put_fn(b) for b in itertools.islice(iterator, 1))
        yield ready
