"""How one pure train step runs over devices: the ``pmap`` driver and the mesh driver.

A step is ``step(state, batch, rng) -> (state, metrics)`` whose collectives name the axis
``"data"``. ``PmapDriver`` runs it under ``jax.pmap`` (state stacked over local devices);
``MeshDriver`` under ``jax.jit(jax.shard_map(...))`` over a 1-D device mesh (state replicated
as global arrays). Both give the numbers of one device on the whole batch.

Outside the step, state is always exchanged as *global replicated arrays*
(``NamedSharding(mesh, P())``): that is what checkpoints save and evaluation reads, on one
host or many (Orbax cannot save pmap's host-local stacked arrays across hosts).
"""

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
DRIVERS = ("pmap", "mesh")


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over all (global) devices."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def as_varying(tree):
    """Marks replicated values as per-device inside a step, so that ``jax.grad`` returns each
    device's partial gradient (to be ``psum``-ed explicitly) under both drivers alike.

    Under ``shard_map``, differentiating w.r.t. a replicated input would otherwise insert the
    cross-device sum itself; under ``pmap`` this is a no-op.
    """
    return jax.tree.map(lambda x: jax.lax.pcast(x, AXIS, to="varying"), tree)


def check_batch_divides(global_batch: int, devices: int, what: str = "batch_size") -> None:
    """Clear error when a batch cannot be split evenly over the devices."""
    if global_batch % devices:
        raise ValueError(
            f"{what}={global_batch} does not divide over {devices} devices: choose a multiple of "
            f"{devices} (e.g. {max(devices, global_batch // devices * devices)}).")


class MeshDriver:
    """Runs the step as ``jit(shard_map(step))`` over a mesh; the batch is split on ``"data"``."""

    name = "mesh"

    def __init__(self, step: Callable, mesh: Mesh | None = None, donate: bool = True):
        self.mesh = mesh or data_mesh()
        specs = dict(in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()))
        self._step = jax.jit(jax.shard_map(step, mesh=self.mesh, **specs),
                             donate_argnums=(0,) if donate else ())

    def put_state(self, state):
        """Global replicated arrays (or host values) -> the driver's state layout."""
        return jax.device_put(state, replicated(self.mesh))

    def get_state(self, state):
        """The driver's state layout -> global replicated arrays."""
        return state

    def put_batch(self, batch: dict[str, np.ndarray]):
        """This process's slice of the global batch -> global arrays split over ``"data"``."""
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)

    def step(self, state, batch, rng) -> tuple[Any, dict]:
        return self._step(state, batch, jax.device_put(rng, replicated(self.mesh)))


class PmapDriver:
    """Runs the step under ``jax.pmap(axis_name="data")`` over this process's devices."""

    name = "pmap"

    def __init__(self, step: Callable, mesh: Mesh | None = None, donate: bool = True):
        self.mesh = mesh or data_mesh()  # global mesh, for get_state
        self.devices = [d for d in self.mesh.devices.flat if d.process_index == jax.process_index()]
        self._local = Mesh(np.asarray(self.devices), (AXIS,))
        self._step = jax.pmap(step, axis_name=AXIS, in_axes=(0, 0, None), devices=self.devices,
                              donate_argnums=(0,) if donate else ())

    def _stack(self, x):
        """One value -> ``[n_local, ...]`` with one copy on each local device."""
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            local = {s.device: s.data for s in x.addressable_shards}
            pieces = [jax.device_put(local[d], d)[None] for d in self.devices]
        else:
            pieces = [jax.device_put(x, d)[None] for d in self.devices]
        return jax.make_array_from_single_device_arrays(
            (len(self.devices),) + np.shape(x), NamedSharding(self._local, P(AXIS)), pieces)

    def put_state(self, state):
        return jax.tree.map(self._stack, state)

    def get_state(self, state):
        def unstack(x):
            shards = {s.device: s.data[0] for s in x.addressable_shards}
            pieces = [shards[d] for d in self.mesh.devices.flat if d in shards]
            return jax.make_array_from_single_device_arrays(x.shape[1:], replicated(self.mesh), pieces)
        return jax.tree.map(unstack, state)

    def put_batch(self, batch: dict[str, np.ndarray]):
        n = len(self.devices)
        def split(x):
            check_batch_divides(x.shape[0], n, "the per-process batch")
            return jax.device_put(x.reshape((n, x.shape[0] // n) + x.shape[1:]),
                                  NamedSharding(self._local, P(AXIS)))
        return jax.tree.map(split, batch)

    def step(self, state, batch, rng):
        state, metrics = self._step(state, batch, rng)
        return state, jax.tree.map(lambda m: m[0], metrics)


def make_driver(name: str, step: Callable, mesh: Mesh | None = None, donate: bool = True):
    """The driver called ``name`` ("pmap" or "mesh") around ``step``."""
    if name not in DRIVERS:
        raise ValueError(f"Unknown parallel driver {name!r}; choose one of {DRIVERS}.")
    return (PmapDriver if name == "pmap" else MeshDriver)(step, mesh, donate)
