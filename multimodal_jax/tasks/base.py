"""The Task contract: all that the training loop, the config checks and the FLOP meter may ask
of a task. A task is a subclass of ``Task`` registered in ``tasks/__init__.py``; the loop
knows nothing else about it.

    task = TaskClass(config, workdir)     # prepares data and tokenizer, builds the model
    state = task.create_state(rng)        # a flax struct with a ``step`` field, on the host
    step = task.train_step()              # pure step(state, batch, rng) -> (state, metrics)
                                          #   whose collectives name the "data" axis
    batches = task.train_batches(start)   # this process's numpy batches from step ``start`` on
    metrics = task.evaluate(params, mesh, picture_path)   # its Evaluator's {"name": float}
"""

import abc
from typing import Any
from typing import Callable
from typing import ClassVar
from typing import Iterator
from typing import Optional

import ml_collections
import numpy as np
from jax.sharding import Mesh

from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.evaluation import base as evaluation_base

Step = Callable[[Any, dict, Any], tuple[Any, dict]]


class Task(abc.ABC):
    """One kind of training (contrastive, classification, ...) bound to one config."""

    name: ClassVar[str]  # the config's ``task`` field
    pictures_every_eval: ClassVar[bool] = False  # a picture at every evaluation, not only the last

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
        """``shapes_only``: build the model and steps from the config alone, for compiling them
        ahead of time (``runtime/pod_compile.py``): no dataset is prepared or read, no
        tokenizer file trained or read (``tokenizers.TokenizerShape``), no weights loaded."""
        self.config, self.workdir, self.shapes_only = config, workdir, shapes_only
        self.tokenizer = None  # the text tokenizer of the batches, for tasks that read text
        self.evaluator: evaluation_base.Evaluator  # set by the task's constructor
        # A workdir with a checkpoint restores over the fresh state: then config.init_from's
        # weights are not read (they may have moved since).
        self.pretrained = not shapes_only and workdir_lib.latest_step(workdir) is None
        if not shapes_only:
            datasets.ensure_prepared_once(config.data)

    @classmethod
    @abc.abstractmethod
    def check_config(cls, config: ml_collections.ConfigDict) -> None:
        """Raises ``ValueError`` naming a field of this task's that cannot work, and the fix;
        the config checks call it before anything heavy runs, and nothing later re-checks."""

    @abc.abstractmethod
    def create_state(self, rng) -> Any:
        """A fresh train state, from ``config.init_from``'s weights where it names some and
        ``self.pretrained``."""

    @abc.abstractmethod
    def train_step(self) -> Step:
        """The pure step ``(state, batch, rng) -> (state, metrics)``, config choices bound."""

    def evaluate(self, params, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        """This task's metrics of ``params`` (global arrays on ``mesh``) by its evaluator; a
        figure to ``picture_path`` when given."""
        return self.evaluator.evaluate(params, mesh, picture_path)

    def train_batches(self, start_step: int) -> Iterator[dict[str, np.ndarray]]:
        """This process's endless batches from ``start_step`` on (the stream a run that never
        stopped would see there)."""
        return pipeline.make_train_iterator(self.config.data, self.tokenizer,
                                            self.config.batch_size, self.config.seed, start_step)

    def eval_functions(self) -> dict[str, tuple[Callable, tuple[str, ...]]]:
        """The jitted functions evaluation runs over the mesh, ``name: (fn, keys)`` with
        ``fn(params, *[batch[k] for k in keys])`` on evaluation batches, so that they can be
        compiled ahead of time; none by default."""
        return {}

    def flops_per_example(self) -> Optional[float]:
        """Analytic training FLOPs of one example (``parallel/flops.py``), for the MFU meter;
        None where the task's model is not counted."""
        return None
