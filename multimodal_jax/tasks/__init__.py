"""Tasks by name. A task binds a config to what ``loop.train_and_evaluate`` needs:

    task = TaskClass(config, workdir)   # prepares data and tokenizer, builds the model
    task.name                           # "contrastive", ...
    task.create_state(rng)              # a flax TrainState on the host
    task.train_step()                   # pure step(state, batch, rng) -> (state, metrics)
                                        #   whose collectives name the "data" axis
    task.train_batches(start_step)      # this process's numpy batches from start_step on
    task.evaluate(params, mesh, picture_path=None) -> {"metric/name": float}
"""

from multimodal_jax.tasks.adversarial import AdversarialTask
from multimodal_jax.tasks.captioning import CaptioningTask
from multimodal_jax.tasks.classification import ClassificationTask
from multimodal_jax.tasks.contrastive import ContrastiveTask

TASKS = {"contrastive": ContrastiveTask, "classification": ClassificationTask,
         "adversarial": AdversarialTask}
TASKS["captioning"] = CaptioningTask


def get_task(name: str):
    """The task class called ``name``."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name]
