"""Runs that a config needs first: ``config.prerequisites`` names other runs whose checkpoints
this one reads (e.g. a GAN's text tower, its evaluation encoder, its attribute classifier).

    config.prerequisites.clip = ConfigDict(dict(workdir="", config=clip_shapes.get_config()))

A non-empty ``workdir`` names an existing run (``DIR`` / ``workdir:DIR``, or published weights
such as ``hf_clip:DIR`` where the reader accepts them) that is used as it is. Left empty, the
run is trained with its own config into ``<this workdir>/<name>`` before this one starts (or
finished there, if it was interrupted), so a config works from nothing.

``config.init_from`` may name a prerequisite too (``init_from="clip"``): the run then starts
from that prerequisite's weights.

Nothing here trains: ``pending`` lists the runs to train first (the loop trains them), and
``resolve`` turns every reference to a prerequisite into its path, so that the tasks read
``config.prerequisites[name].workdir`` as a path and never look for it themselves.
"""

import copy
import dataclasses
import os

import ml_collections

from multimodal_jax import workdir as workdir_lib
from multimodal_jax.pretrained import init_from


@dataclasses.dataclass(frozen=True)
class Run:
    """A prerequisite run to train: its config and the workdir it trains into."""

    name: str
    config: ml_collections.ConfigDict
    workdir: str


def names(config: ml_collections.ConfigDict) -> list[str]:
    """The prerequisites' names (in ConfigDict key order: sorted)."""
    return list(config.get("prerequisites", {}).keys())


def spec_of(config: ml_collections.ConfigDict, workdir: str, name: str) -> str:
    """Where prerequisite ``name`` lives: its ``workdir`` field, else ``<workdir>/<name>``."""
    if name not in names(config):
        raise ValueError(f"config.prerequisites has no entry {name!r}; it has {names(config)}.")
    return config.prerequisites[name].get("workdir") or os.path.join(workdir, name)


def _check_given(name: str, spec: str) -> None:
    kind, path = init_from.parse(spec)
    if kind == "workdir" and workdir_lib.latest_step(path) is None:
        raise FileNotFoundError(
            f"config.prerequisites.{name}.workdir={spec!r} holds no checkpoint; give the workdir "
            "of a finished run, or leave it empty to train it into a sub-folder of this workdir.")
    if kind != "workdir" and not os.path.exists(path):
        raise FileNotFoundError(f"config.prerequisites.{name}.workdir={spec!r}: {path!r} does not exist.")


def pending(config: ml_collections.ConfigDict, workdir: str) -> list[Run]:
    """The prerequisite runs still to train, in the order to train them (a run's own
    prerequisites before it); every given workdir is checked first, so that a wrong path
    fails in seconds rather than after hours of training the others."""
    given = [name for name in names(config) if config.prerequisites[name].get("workdir")]
    for name in given:
        _check_given(name, config.prerequisites[name].workdir)
    runs = []
    for name in names(config):
        if name in given:
            continue
        entry, path = config.prerequisites[name], spec_of(config, workdir, name)
        step = workdir_lib.latest_step(path)
        if step is not None and step >= entry.config.total_steps:
            continue
        runs += pending(entry.config, path) + [Run(name, entry.config, path)]
    return runs


def resolve(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """``config`` with every prerequisite's ``workdir`` filled in (its default sub-folder
    where it was empty) and an ``init_from`` that names a prerequisite replaced by that
    prerequisite's path; ``config`` itself is left as it is."""
    if not names(config):
        return config
    resolved = copy.deepcopy(config)
    for name in names(config):
        resolved.prerequisites[name].workdir = spec_of(config, workdir, name)
    if resolved.get("init_from", "") in names(config):
        resolved.init_from = resolved.prerequisites[resolved.init_from].workdir
    return resolved
