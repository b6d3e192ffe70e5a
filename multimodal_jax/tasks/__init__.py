"""Tasks by name: each is a ``base.Task`` (the contract the loop, the config checks and the
FLOP meter use), one file each. A new task is one file and one line here."""

from multimodal_jax.tasks.adversarial import AdversarialTask
from multimodal_jax.tasks.base import Task
from multimodal_jax.tasks.captioning import CaptioningTask
from multimodal_jax.tasks.classification import ClassificationTask
from multimodal_jax.tasks.contrastive import ContrastiveTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    ContrastiveTask,
    ClassificationTask,
    CaptioningTask,
    AdversarialTask,
)}


def get_task(name: str) -> type[Task]:
    """The task class called ``name``."""
    if name not in TASKS:
        raise ValueError(f"config.task={name!r} is unknown; choose one of {sorted(TASKS)}.")
    return TASKS[name]
