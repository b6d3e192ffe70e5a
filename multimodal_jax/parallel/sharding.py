"""Sharding rules -> PartitionSpecs: which arrays of the train state are split over which mesh
axes, so that FSDP is one config line (``config.parallel.rules``).

``rules`` is a sequence of ``(regex, spec)`` pairs. Each leaf of the state has a path such as
``params/image_tower/encoder/block_0/mlp/fc1/kernel``; the optimiser's moments carry the same
path after their own prefix (``opt_state/0/mu/image_tower/...``), so one rule covers a parameter
and its moments. The first rule whose regex ``re.search``-es the path decides:

  ``"fsdp"``       split the largest dimension that the ``"fsdp"`` axis size divides over
                   ``"fsdp"`` (keep the leaf whole when none does), as big_vision's fsdp rule;
  ``"replicate"``  keep the leaf whole on every device;
  ``(a, b, ...)``  one entry per dimension: a mesh axis name, ``None``, or a logical axis name
                   that ``logical_axes`` maps to a mesh axis (or ``None``), MaxText style.

Leaves no rule matches, and scalars, are replicated. Only the ``"fsdp"`` axis may split the
state: the ``"data"`` axis carries the batch (see ``parallel/drivers.py``).
"""

import re
from typing import Any
from typing import Mapping
from typing import Optional
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

FSDP = "fsdp"
STATE_AXES = (FSDP,)  # mesh axes that may split the state


class RulesError(ValueError):
    """Sharding rules that cannot lay out the state (or, with ``fsdp > 1``, split none of it):
    a config error, found when the state's shapes are known."""

# Logical axis names for the parameters of this package's Transformers (ViT, text, two-tower),
# to use with a ``logical_axes`` mapping such as ``FSDP_LOGICAL_AXES`` below (every name a rule
# uses must be mapped, to a mesh axis or None; a leaf matching no rule stays whole).
LOGICAL_RULES = (
    (r"attn/(query|key|value)/kernel$", ("embed", "heads", "head_dim")),
    (r"attn/out/kernel$", ("heads", "head_dim", "embed")),
    (r"mlp/fc1/kernel$", ("embed", "mlp")),
    (r"mlp/fc2/kernel$", ("mlp", "embed")),
    (r"embedding/embedding$", ("vocab", "embed")),  # text token table
    (r"embedding/kernel$", (None, None, None, "embed")),  # ViT patch convolution
    (r"(img|txt)_proj/kernel$", ("embed", "proj")),
    (r"posemb", (None, None, "embed")),
)
# FSDP through logical names: the model width is split over "fsdp", the rest kept whole.
FSDP_LOGICAL_AXES = {"embed": FSDP, "heads": None, "head_dim": None, "mlp": None, "vocab": None,
                     "proj": None}


def path_str(path) -> str:
    """A ``tree_util`` key path -> ``"params/image_tower/encoder/block_0/mlp/fc1/kernel"``."""
    names = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                names.append(str(getattr(key, attr)))
                break
        else:
            names.append(str(key))
    return "/".join(names)


def _axis_size(mesh: Mesh, axis: str) -> int:
    return dict(mesh.shape).get(axis, 1)


def _fsdp_spec(shape: tuple[int, ...], mesh: Mesh) -> P:
    """The largest dimension divisible by the fsdp axis size goes over ``"fsdp"``."""
    size = _axis_size(mesh, FSDP)
    if size == 1:
        return P()
    candidates = [(dim, -i) for i, dim in enumerate(shape) if dim % size == 0]
    if not candidates:
        return P()
    _, neg_index = max(candidates)
    entries = [None] * len(shape)
    entries[-neg_index] = FSDP
    return P(*entries)


def _explicit_spec(path: str, shape, spec, mesh: Mesh, logical_axes: Mapping[str, Any]) -> P:
    """A per-dimension tuple (mesh or logical axis names) -> a checked PartitionSpec."""
    if len(spec) != len(shape):
        raise RulesError(f"Sharding rule {tuple(spec)} has {len(spec)} entries but {path} has "
                         f"shape {shape}: give one entry (axis name or None) per dimension.")
    entries = []
    for dim, name in zip(shape, spec):
        axis = logical_axes.get(name, name) if name is not None else None
        if axis is not None and axis not in mesh.axis_names:
            raise RulesError(f"Sharding rule for {path}: {name!r} is neither a mesh axis "
                             f"{mesh.axis_names} nor a logical axis in logical_axes "
                             f"{sorted(logical_axes)}; add it to config.parallel.logical_axes.")
        if axis is not None and axis not in STATE_AXES:
            raise RulesError(f"Sharding rule for {path} splits it over {axis!r}; only {STATE_AXES} "
                             "may split parameters and optimiser state ('data' carries the batch).")
        if axis is not None and dim % _axis_size(mesh, axis):
            raise RulesError(f"Sharding rule for {path}: dimension {dim} does not divide over the "
                             f"{_axis_size(mesh, axis)} devices of axis {axis!r}; map it to None or "
                             "change config.parallel.fsdp.")
        if axis is not None and axis in entries:
            raise RulesError(f"Sharding rule {tuple(spec)} for {path} puts mesh axis {axis!r} on "
                             "two dimensions (twice); map one of them to None.")
        entries.append(axis)
    return P(*entries)


def spec_for(path: str, shape: tuple[int, ...], rules: Sequence, mesh: Mesh,
             logical_axes: Optional[Mapping[str, Any]] = None) -> P:
    """The PartitionSpec of one leaf (its ``path`` and ``shape``) under ``rules``."""
    if not shape:
        return P()
    for pattern, spec in rules:
        try:
            matched = re.search(pattern, path)
        except re.error as error:
            raise RulesError(f"Sharding rule regex {pattern!r} is invalid: {error}.") from None
        if not matched:
            continue
        if spec == "fsdp":
            return _fsdp_spec(shape, mesh)
        if spec == "replicate" or spec is None:
            return P()
        if isinstance(spec, str):
            raise RulesError(f"Sharding rule ({pattern!r}, {spec!r}): a spec is 'fsdp', "
                             "'replicate' or a tuple with one axis name (or None) per dimension.")
        return _explicit_spec(path, shape, tuple(spec), mesh, dict(logical_axes or {}))
    return P()


def tree_specs(tree, rules: Sequence, mesh: Mesh, logical_axes=None):
    """A PartitionSpec for every leaf of ``tree`` (arrays or shape/dtype structs)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: spec_for(path_str(path), tuple(np.shape(x)), rules, mesh, logical_axes),
        tree)


def tree_shardings(tree, mesh: Mesh, rules: Sequence = (), logical_axes=None):
    """A ``NamedSharding`` on ``mesh`` for every leaf of ``tree``, from ``rules``."""
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                        tree_specs(tree, rules, mesh, logical_axes),
                        is_leaf=lambda x: isinstance(x, P))


def can_split(rules: Sequence, logical_axes: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether any rule may split a leaf over ``"fsdp"`` (``"fsdp"``, or a tuple naming it
    directly or through ``logical_axes``), judged from the rules alone."""
    axes = dict(logical_axes or {})
    for rule in rules:
        spec = rule[1] if len(rule) == 2 else None
        if spec == FSDP or (isinstance(spec, (tuple, list))
                            and FSDP in [axes.get(name, name) for name in spec if name is not None]):
            return True
    return False


def check_splits_something(specs, mesh: Mesh) -> None:
    """``RulesError`` when the mesh has an ``"fsdp"`` axis of more than one device and no leaf
    of ``specs`` is split over it (the rules match nothing, or no dimension divides)."""
    if _axis_size(mesh, FSDP) == 1:
        return
    leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
    if not any(FSDP in tuple(spec) for spec in leaves):
        raise RulesError(
            f"config.parallel.rules split none of the state's {len(leaves)} arrays over the "
            f"{_axis_size(mesh, FSDP)} devices of each FSDP group (config.parallel.fsdp): no "
            "regex matches a path such as 'params/image_tower/...', or no dimension divides. "
            "Every array would be replicated, costing FSDP's communication and saving no "
            "memory; use e.g. rules=(('.*', 'fsdp'),), or fsdp=1.")


def bytes_per_device(tree) -> dict:
    """``{device: bytes}`` that the arrays of ``tree`` occupy on each addressable device."""
    totals: dict = {}
    for x in jax.tree.leaves(tree):
        for shard in x.addressable_shards:
            totals[shard.device] = totals.get(shard.device, 0) + shard.data.nbytes
    return totals
