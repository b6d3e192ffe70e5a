"""How one pure train step runs over devices: the ``pmap`` driver and the mesh driver.

A step is ``step(state, batch, rng) -> (state, metrics)`` whose collectives name the axis
``"data"``. ``PmapDriver`` runs it under ``jax.pmap`` over every process's devices (each
process holds its devices' copies of the state, stacked);
``MeshDriver`` under ``jax.jit(jax.shard_map(...))`` over a device mesh. Both give the numbers
of one device on the whole batch.

FSDP (mesh driver only): the mesh gets a second axis, ``"fsdp"`` (``make_mesh(fsdp=N)``), and
the state is split over it by rules (``sharding.py``). The step is then manual (``shard_map``)
over ``"data"`` only and automatic over ``"fsdp"``: inside it, each ``"data"`` slice sees its
batch and the state as global arrays over the ``N`` devices of its ``"fsdp"`` group, and XLA
(GSPMD) gathers the parameters where they are used and reduce-scatters their gradients. So
the task's step is unchanged: its collectives, ``as_varying`` and explicit ``psum`` still name
``"data"`` and keep their meaning, and the batch is split over both axes.
"""

from typing import Any
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from multimodal_jax import fields
from multimodal_jax.parallel import sharding
from multimodal_jax.parallel.mesh import AXIS
from multimodal_jax.parallel.mesh import FSDP
from multimodal_jax.parallel.mesh import batch_axes
from multimodal_jax.parallel.mesh import check_batch_divides
from multimodal_jax.parallel.mesh import check_fsdp
from multimodal_jax.parallel.mesh import data_mesh
from multimodal_jax.parallel.mesh import global_replicated
from multimodal_jax.parallel.mesh import layout
from multimodal_jax.parallel.mesh import replicated

DRIVERS = ("pmap", "mesh")
FIELDS = ("driver", "fsdp", "rules", "logical_axes", "peak_tflops")  # of config.parallel


def check_config(parallel_config, device_count: int) -> None:
    """Clear errors for ``config.parallel`` (driver, fsdp, rules, logical_axes, peak_tflops)
    before anything runs; ``ValueError`` naming the field."""
    fields.check_known(parallel_config, FIELDS, "config.parallel")
    driver, fsdp = parallel_config.get("driver", "mesh"), parallel_config.get("fsdp", 1)
    check_driver(driver)
    check_fsdp(fsdp, device_count)
    check_combination(driver, fsdp)
    for rule in layout(parallel_config)["rules"]:
        if len(rule) != 2 or not isinstance(rule[0], str):
            raise ValueError(f"config.parallel.rules entry {rule!r} must be (regex, spec), e.g. "
                             "('.*', 'fsdp').")
    if fsdp > 1 and not sharding.can_split(**layout(parallel_config)):
        raise ValueError(
            f"config.parallel.fsdp={fsdp} with config.parallel.rules="
            f"{layout(parallel_config)['rules']!r} shards nothing: no rule splits an array over "
            "'fsdp', so every array would be replicated on each device of a group (FSDP's "
            "communication, none of its memory saving). Add rules, e.g. "
            "--config.parallel.rules=\"(('.*', 'fsdp'),)\" (each array's largest dividing "
            "dimension split), or keep fsdp=1.")
    names = set(sharding.STATE_AXES)
    for name, axis in layout(parallel_config)["logical_axes"].items():
        if axis is not None and axis not in names:
            raise ValueError(f"config.parallel.logical_axes[{name!r}]={axis!r}: map logical axes "
                             f"to {sorted(sharding.STATE_AXES)} or None.")
    if parallel_config.get("peak_tflops", 0) < 0:
        raise ValueError("config.parallel.peak_tflops must be >= 0 (0: measure it at start).")


def check_driver(name: str) -> None:
    """``name`` is one of ``DRIVERS``."""
    if name not in DRIVERS:
        raise ValueError(f"config.parallel.driver={name!r} is unknown; choose one of {DRIVERS}.")


def check_combination(driver: str, fsdp: int) -> None:
    """FSDP splits the state, which only the mesh driver does."""
    if fsdp > 1 and driver == "pmap":
        raise ValueError("config.parallel.fsdp > 1 needs config.parallel.driver='mesh' (the pmap "
                         "driver keeps the state replicated).")


def _bind_data_axis_by_vmap(step: Callable) -> Callable:
    """``step`` with a size-1 ``"data"`` axis bound by ``vmap`` rather than ``shard_map``: all
    devices are in the automatic ``"fsdp"`` axis. (XLA 0.10 cannot all-reduce a non-scalar over a
    manual axis of size 1 in partial-manual mode: "Cross-partition allreduce must be in
    (partial) manual partitioning mode".) The step's collectives are then identities."""
    def run(state, batch, rng):
        batch = jax.tree.map(lambda x: x[None], batch)
        return jax.vmap(step, in_axes=(None, 0, None), out_axes=(None, None), axis_name=AXIS,
                        axis_size=1)(state, batch, rng)
    return run


class MeshDriver:
    """Runs the step as ``jit(shard_map(step))`` over a mesh, manual over ``"data"`` and (with
    FSDP) automatic over ``"fsdp"``; the state is laid out by ``rules`` (``sharding.py``)."""

    name = "mesh"

    def __init__(self, step: Callable, mesh: Mesh | None = None, donate: bool = True,
                 rules=(), logical_axes=None):
        self.mesh = mesh or data_mesh()
        self.rules, self.logical_axes = tuple(rules or ()), dict(logical_axes or {})
        if FSDP in self.mesh.axis_names and self.mesh.shape[AXIS] == 1:
            self._shard_mapped = _bind_data_axis_by_vmap(step)
        else:
            self._shard_mapped = jax.shard_map(step, mesh=self.mesh, in_specs=(P(), P(AXIS), P()),
                                               out_specs=(P(), P()), axis_names={AXIS})
        self._donate = (0,) if donate else ()
        self._step = None  # jitted at the first step, with the state's layout as its output's

    def state_shardings(self, state):
        """The ``NamedSharding`` of every leaf of ``state`` under the driver's rules."""
        return sharding.tree_shardings(state, self.mesh, self.rules, self.logical_axes)

    def put_state(self, state):
        """Global arrays (or host values) -> the driver's state layout."""
        return jax.device_put(state, self.state_shardings(state))

    def get_state(self, state):
        """The driver's state layout: already global arrays, replicated or split by the rules."""
        return state

    def put_batch(self, batch: dict[str, np.ndarray]):
        """This process's slice of the global batch -> global arrays split over the batch axes."""
        sharding_ = NamedSharding(self.mesh, P(batch_axes(self.mesh)))
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding_, x), batch)

    def _jitted(self, state):
        """The jitted step whose output state keeps ``state``'s layout (its leaves' shardings)."""
        layout = jax.tree.map(lambda x: x.sharding, state)
        return jax.jit(self._shard_mapped, donate_argnums=self._donate,
                       out_shardings=(layout, replicated(self.mesh)))

    def step(self, state, batch, rng) -> tuple[Any, dict]:
        if self._step is None:
            self._step = self._jitted(state)
        return self._step(state, batch, global_replicated(rng, self.mesh))

    def lower(self, state, batch, rng):
        """The step lowered for abstract arguments (``jax.ShapeDtypeStruct``s carrying their
        shardings, ``rng`` a replicated key): what ``step`` would run, compiled ahead of time
        for the mesh's devices, which need not be this machine's."""
        return self._jitted(state).lower(state, batch, rng)


class PmapDriver:
    """Runs the step under ``jax.pmap(axis_name="data")`` over all devices of the mesh (every
    process's: the collectives span the job); each process feeds and reads its own devices."""

    name = "pmap"

    def __init__(self, step: Callable, mesh: Mesh | None = None, donate: bool = True,
                 rules=(), logical_axes=None):
        self.mesh = mesh or data_mesh()  # global mesh, for get_state
        check_combination(self.name, dict(self.mesh.shape).get(FSDP, 1))
        del rules, logical_axes  # nothing to split: every device holds the whole state
        self.devices = [d for d in self.mesh.devices.flat if d.process_index == jax.process_index()]
        self._local = Mesh(np.asarray(self.devices), (AXIS,))
        # All devices, not only this process's: with local ones only, each process would run
        # its own job (its collectives, gradients and parameters its own).
        self._step = jax.pmap(step, axis_name=AXIS, in_axes=(0, 0, None),
                              devices=list(self.mesh.devices.flat),
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


    def state_shardings(self, state):
        """Outside the step the pmap driver's state is global and replicated."""
        return jax.tree.map(lambda _: replicated(self.mesh), state)


def make_driver(name: str, step: Callable, mesh: Mesh | None = None, donate: bool = True,
                rules=(), logical_axes=None):
    """The driver called ``name`` ("pmap" or "mesh") around ``step``; ``rules`` and
    ``logical_axes`` (mesh driver only) lay out the state (``sharding.py``)."""
    check_driver(name)
    return (PmapDriver if name == "pmap" else MeshDriver)(step, mesh, donate, rules, logical_axes)
