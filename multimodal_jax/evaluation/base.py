"""The one evaluator interface: built once per run with the task's jitted functions and its
config, then asked for the metrics of any params.

    evaluator = SomeEvaluator(...)                          # jits, loads judges, reads config
    metrics = evaluator.evaluate(params, mesh, picture)     # {"prefix/split/metric": float}
"""

import abc
from typing import Optional

from jax.sharding import Mesh


class Evaluator(abc.ABC):
    """Metrics of a task's params; every process calls ``evaluate`` alike (multi-host)."""

    @abc.abstractmethod
    def evaluate(self, params, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        """The metrics of ``params`` (global arrays on ``mesh``); process 0 writes a figure to
        ``picture_path`` when it is given."""
