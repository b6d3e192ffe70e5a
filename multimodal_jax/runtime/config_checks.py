"""Checks a run's config before anything heavy runs, so bad input gets one clear message.

``validate(config, workdir)`` raises ``ConfigError`` (a ``ValueError``) naming the field, what
was wrong and how to fix it; the CLI prints it and exits with code 2. It owns only the run's
top-level fields; every other block is checked by the module that reads it, next to its
constants (the task class, the drivers, the models' factory, the tokenizers, the optimiser,
``init_from``, the datasets), and this module composes those checks in one pass. Files the
config names (tokenizer, pretrained weights) are opened here too, without executing anything
(no pickle), so a file of the wrong format is reported before data preparation and compilation.
"""

import difflib
from typing import Callable

import jax
import ml_collections

from multimodal_jax import tasks
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import tokenizers
from multimodal_jax.models import factory
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import guards
from multimodal_jax.tasks import optim

REQUIRED_INTS = ("total_steps", "batch_size", "seed", "checkpoint_every_steps",
                 "eval_every_steps", "log_every_steps", "keep_checkpoints")
# Top-level fields every task may have; a field close to one of these but not it is a typo.
COMMON_FIELDS = REQUIRED_INTS + ("task", "loss", "init_from", "on_nonfinite", "data", "tokenizer",
                                 "model", "optim", "parallel", "evaluation")


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and how to fix it."""


def check_top_level(config: ml_collections.ConfigDict, device_count: int) -> None:
    """The run's own fields: whole step counts and sizes, and no misspelt top-level field."""
    for field in REQUIRED_INTS:
        if field not in config:
            raise ValueError(f"config.{field} is missing: every config needs {REQUIRED_INTS}.")
        value = config[field]
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"config.{field} must be an integer, got {value!r} "
                             f"({type(value).__name__}).")
        if value < 0 or (value == 0 and field != "seed"):
            raise ValueError(f"config.{field} must be {'>= 0' if field == 'seed' else 'positive'}, "
                             f"got {value}.")
    mesh_lib.check_batch_divides(config.batch_size, device_count, "config.batch_size")
    for field in set(config.keys()) - set(COMMON_FIELDS):
        close = difflib.get_close_matches(field, COMMON_FIELDS, n=1, cutoff=0.8)
        if close:  # other unknown top-level fields may belong to a task: left alone
            raise ValueError(f"config.{field} is not a field this package reads; did you mean "
                             f"config.{close[0]}? (A misspelt field would be silently ignored.)")


def _checks(config: ml_collections.ConfigDict, workdir: str, devices: int,
            shapes_only: bool) -> list[Callable[[], None]]:
    """Each block's owner's check, in the order a user is told of them."""
    model = config.get("model", {})
    checks = [
        lambda: check_top_level(config, devices),
        lambda: drivers.check_config(config.parallel, devices),
        lambda: guards.check_mode(config.get("on_nonfinite", "skip")),
        lambda: tasks.get_task(config.get("task", "contrastive")).check_config(config),
        lambda: factory.check_dtype(config.model.dtype),
    ]
    if not shapes_only:
        checks.insert(3, lambda: workdir_lib.check_writable(workdir))
    if "tokenizer" in config:  # before the text model, which compares its max_len
        checks.append(lambda: tokenizers.check_config(config.tokenizer, read_file=not shapes_only))
    if "image" in model:
        checks.append(lambda: factory.check_image_block(model.image, config.data.image_size))
    if "text" in model:
        checks.append(lambda: factory.check_text_block(
            model.text, config.get("tokenizer", {}).get("max_len")))
    if "optim" in config:
        checks.append(lambda: optim.check_config(config.optim))
    named = config.get("init_from") and config.init_from not in config.get("prerequisites", {})
    if named and not shapes_only:
        checks.append(lambda: init_from.check_spec(config.init_from))  # (a prerequisite: later)
    checks.append(lambda: datasets.check_config(config.data, prepared=not shapes_only,
                                                    batch_size=config.batch_size))
    return checks


def validate(config: ml_collections.ConfigDict, workdir: str, devices: int | None = None,
             shapes_only: bool = False) -> None:
    """All checks for a training or evaluation run of ``config`` in ``workdir`` on this job's
    devices, or on ``devices`` of them (a topology compiled for). ``shapes_only``: the checks
    that need no file (an ahead-of-time compile reads no dataset, tokenizer or weights)."""
    devices = jax.device_count() if devices is None else devices
    for check in _checks(config, workdir, devices, shapes_only):
        try:
            check()
        except (ValueError, FileNotFoundError) as error:
            raise ConfigError(" ".join(str(error).split())) from None
