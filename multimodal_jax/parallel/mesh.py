"""The device mesh and the train state's place on it: the ``"data"`` (and ``"fsdp"``) axes,
state made or restored as global arrays in the layout the sharding rules give, and the
per-device view (``as_varying``) that a step's gradients need under every driver.

Outside a step, state is exchanged as *global arrays* (replicated, or split as the rules
say): that is what checkpoints save and evaluation reads, on one host or many (Orbax cannot
save pmap's host-local stacked arrays across hosts). A checkpoint restores onto any mesh:
restore into a template laid out for the new mesh (``init_state``).
"""

from typing import Callable

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from multimodal_jax.parallel import sharding

AXIS = "data"
FSDP = sharding.FSDP


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over all (global) devices."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (AXIS,))


def check_fsdp(fsdp, device_count: int) -> None:
    """``fsdp`` (the FSDP group size) is a positive divisor of the device count."""
    if not isinstance(fsdp, int) or fsdp < 1 or device_count % fsdp:
        raise ValueError(f"config.parallel.fsdp={fsdp!r} must be a positive divisor of the "
                         f"{device_count} devices (1 = no FSDP).")


def num_slices(devices) -> int:
    """How many slices (TPU pod slices joined over the data-centre network) hold ``devices``."""
    return len({getattr(d, "slice_index", None) or 0 for d in np.asarray(devices).flat})


def make_mesh(fsdp: int = 1, devices=None) -> Mesh:
    """``data_mesh`` when ``fsdp == 1``, else a ``("data", "fsdp")`` mesh whose rows are groups
    of ``fsdp`` consecutive devices (within one host when ``fsdp`` divides its device count).
    On several slices (multi-slice TPU jobs) the mesh is hybrid: ``"data"`` spans the slices
    over the data-centre network, each ``"fsdp"`` group stays inside one slice (on ICI)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    check_fsdp(fsdp, devices.size)
    slices = num_slices(devices)
    if slices > 1:
        check_fsdp(fsdp, devices.size // slices)
        per_slice = devices.size // slices // fsdp
        shape, dcn = ((per_slice, fsdp), (slices, 1)) if fsdp > 1 else ((per_slice,), (slices,))
        grid = mesh_utils.create_hybrid_device_mesh(shape, dcn, list(devices.flat))
        return Mesh(grid, (AXIS, FSDP) if fsdp > 1 else (AXIS,))
    if fsdp == 1:
        return data_mesh(devices)
    return Mesh(devices.reshape(-1, fsdp), (AXIS, FSDP))


def mesh_from_config(parallel_config) -> Mesh:
    """The mesh that ``config.parallel`` (its ``fsdp`` field, default 1) describes."""
    return make_mesh(int(parallel_config.get("fsdp", 1)))


def layout(parallel_config) -> dict:
    """``rules`` and ``logical_axes`` of ``config.parallel`` (both optional), as keyword
    arguments for ``make_driver`` and ``init_state``."""
    axes = parallel_config.get("logical_axes", None) or {}
    return {"rules": tuple(tuple(rule) for rule in parallel_config.get("rules", None) or ()),
            "logical_axes": dict(axes.to_dict() if hasattr(axes, "to_dict") else axes)}


def batch_axes(mesh: Mesh):
    """The mesh axes that split the batch: ``"data"``, and ``"fsdp"`` when the mesh has it."""
    return (AXIS, FSDP) if FSDP in mesh.axis_names else AXIS


def init_state(create_state: Callable, rng, mesh: Mesh, rules=(), logical_axes=None):
    """``create_state(rng)`` as global arrays in the layout ``rules`` give on ``mesh``. With
    rules it is traced and made in place (each device computes only its part: no full copy of
    a large model on one device); without, made eagerly and replicated, as it always was."""
    if not rules:
        return jax.device_put(create_state(rng), replicated(mesh))
    abstract = jax.eval_shape(create_state, rng)
    specs = sharding.tree_specs(abstract, rules, mesh, logical_axes)
    sharding.check_splits_something(specs, mesh)
    shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                             is_leaf=lambda x: isinstance(x, P))
    return jax.jit(create_state, out_shardings=shardings)(rng)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def as_varying(tree):
    """Marks replicated values as per-device inside a step, so that ``jax.grad`` returns each
    device's partial gradient (to be ``psum``-ed explicitly) under both drivers alike.

    Under ``shard_map``, differentiating w.r.t. a replicated input would otherwise insert the
    cross-device sum itself; under ``pmap`` this is a no-op, and so it is where ``"data"`` is
    bound by ``vmap`` (a size-1 data axis with FSDP, see ``MeshDriver``).
    """
    if AXIS not in jax.sharding.get_abstract_mesh().manual_axes:
        return tree
    return jax.tree.map(lambda x: jax.lax.pcast(x, AXIS, to="varying"), tree)


def global_replicated(x, mesh: Mesh):
    """A value that every process holds alike -> a global array replicated on ``mesh``
    (``device_put`` cannot place it on other processes' devices). PRNG keys stay keys."""
    if jax.process_count() == 1:
        return jax.device_put(x, replicated(mesh))
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = global_replicated(jax.random.key_data(x), mesh)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, replicated(mesh), lambda index: value[index])


def check_batch_divides(global_batch: int, devices: int, what: str = "batch_size") -> None:
    """Clear error when a batch cannot be split evenly over the devices."""
    if global_batch % devices:
        raise ValueError(
            f"{what}={global_batch} does not divide over {devices} devices: choose a multiple of "
            f"{devices} (e.g. {max(devices, global_batch // devices * devices)}).")
