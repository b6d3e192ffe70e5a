"""Trains a config: ``mmjax-train --config configs/clip_shapes.py --workdir DIR`` (or
``python -m train ...`` from the repository root).

Any field can be overridden with ``--config.FIELD=VALUE``. Resumes from the newest checkpoint
in the workdir (``--workdir DIR`` alone resumes with the config it recorded); runs the config's
prerequisites first. Bad configs get one clear message and
exit code 2.

Multi-host: the same command on every host (TPU pod slices, Slurm and Open MPI are detected),
or add ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` on each.
"""

import functools
import sys

from multimodal_jax.cli import common
from multimodal_jax.runtime import loop


def run() -> None:
    """The ``mmjax-train`` console script."""
    train = functools.partial(loop.train_and_evaluate, command=list(sys.argv))
    common.main(train, "Where checkpoints, logs and pictures go.")
