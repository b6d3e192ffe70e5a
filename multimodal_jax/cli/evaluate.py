"""Evaluates the newest checkpoint of a workdir: ``mmjax-evaluate --workdir DIR`` (or ``python -m
train.evaluate ...`` from the repository root), with the config the run recorded there, changed
by ``--config.FIELD=VALUE`` overrides; or with ``--config CONFIG``, which must describe the same
model as the record (a workdir without a record, or ``init_from`` weights, needs it).

Prints one JSON object with every metric (and ``step``) as the last line of standard output.
Multi-host flags as for ``mmjax-train``.
"""

from multimodal_jax.cli import common
from multimodal_jax.runtime import evaluate_checkpoint


def run() -> None:
    """The ``mmjax-evaluate`` console script."""
    common.main(evaluate_checkpoint.evaluate_latest, "A workdir holding checkpoints.")
