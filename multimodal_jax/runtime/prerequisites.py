"""Runs that a config needs first: ``config.prerequisites`` names other runs whose checkpoints
this one reads (e.g. a GAN's text tower, its evaluation encoder, its attribute classifier).

    config.prerequisites.clip = ConfigDict(dict(workdir="", config=clip_shapes.get_config()))

A non-empty ``workdir`` names an existing run (``DIR`` / ``workdir:DIR``, or published weights
such as ``hf_clip:DIR`` where the reader accepts them) that is used as it is. Left empty, the
run is trained with its own config into ``<this workdir>/<name>`` before this one starts (or
finished there, if it was interrupted), so a config works from nothing.

``config.init_from`` may name a prerequisite too (``init_from="clip"``): the run then starts
from that prerequisite's weights (``resolve_init_from``).
"""

import copy
import logging
import os

import ml_collections

from multimodal_jax.pretrained import init_from

log = logging.getLogger(__name__)


def names(config: ml_collections.ConfigDict) -> list[str]:
    """The prerequisites' names (in ConfigDict key order: sorted)."""
    return list(config.get("prerequisites", {}).keys())


def spec_of(config: ml_collections.ConfigDict, workdir: str, name: str) -> str:
    """Where prerequisite ``name`` lives: its ``workdir`` field, else ``<workdir>/<name>``."""
    if name not in names(config):
        raise ValueError(f"config.prerequisites has no entry {name!r}; it has {names(config)}.")
    return config.prerequisites[name].get("workdir") or os.path.join(workdir, name)


def latest_step(run_workdir: str):
    """The newest saved step in ``run_workdir/checkpoints`` (None if there is none)."""
    directory = os.path.join(run_workdir, "checkpoints")
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
    return max(steps, default=None)


def _check_given(name: str, spec: str) -> None:
    kind, path = init_from.parse(spec)
    if kind == "workdir" and latest_step(path) is None:
        raise FileNotFoundError(
            f"config.prerequisites.{name}.workdir={spec!r} holds no checkpoint; give the workdir "
            "of a finished run, or leave it empty to train it into a sub-folder of this workdir.")
    if kind != "workdir" and not os.path.exists(path):
        raise FileNotFoundError(f"config.prerequisites.{name}.workdir={spec!r}: {path!r} does not exist.")


def ensure(config: ml_collections.ConfigDict, workdir: str, train) -> dict | None:
    """Trains every prerequisite without a ``workdir`` that is not finished yet, calling
    ``train(sub_config, sub_workdir) -> metrics`` (the loop's ``train_and_evaluate``).
    Returns the metrics of a prerequisite run that was preempted (the caller stops too),
    else None."""
    given = [name for name in names(config) if config.prerequisites[name].get("workdir")]
    for name in given:  # all checked before anything trains: a wrong path fails in seconds
        _check_given(name, config.prerequisites[name].workdir)
    for name in names(config):
        entry = config.prerequisites[name]
        if name in given:
            continue
        path = spec_of(config, workdir, name)
        step = latest_step(path)
        if step is not None and step >= entry.config.total_steps:
            continue
        log.info("Prerequisite %r: training its config into %s first.", name, path)
        metrics = train(entry.config, path)
        if metrics.get("preempted"):
            return metrics
    return None


def resolve_init_from(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """``config``, or where its ``init_from`` names a prerequisite, a copy whose ``init_from``
    is that run's workdir (or the weights its ``workdir`` field gives)."""
    spec = config.get("init_from", "")
    if not spec or spec not in names(config):
        return config
    resolved = copy.deepcopy(config)
    resolved.init_from = spec_of(config, workdir, spec)
    return resolved
