"""Tasks by name: each binds a config to its model, state, step, data and evaluation."""

from multimodal_jax.tasks.contrastive import ContrastiveTask

TASKS = {"contrastive": ContrastiveTask}


def get_task(name: str):
    """The task class called ``name``."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name]
