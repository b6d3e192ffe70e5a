"""Evaluation of a saved run: restore the newest checkpoint of a workdir and evaluate it."""

import os

import jax
import ml_collections

from multimodal_jax import checkpoint
from multimodal_jax import config_checks
from multimodal_jax import parallel
from multimodal_jax import tasks


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Metrics of the newest restorable checkpoint in ``workdir``, with its ``step``."""
    config_checks.validate(config, workdir)
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No checkpoints in {workdir!r}: train first with "
                                "`python -m train --config ... --workdir ...`.")
    task = tasks.get_task(config.task)(config, workdir)
    mesh = parallel.data_mesh()
    template = jax.device_put(task.create_state(jax.random.key(config.seed)), parallel.replicated(mesh))
    ckpt = checkpoint.Checkpointer(directory, config.keep_checkpoints)
    state = ckpt.restore(template)
    ckpt.close()
    if state is None:
        raise FileNotFoundError(f"No checkpoint found in {directory!r}: train first.")
    step = int(jax.device_get(state.step))
    picture = os.path.join(workdir, "pictures", f"{task.name}_eval_step{step}.png")
    os.makedirs(os.path.dirname(picture), exist_ok=True)
    return {"step": step, **task.evaluate(state.params, mesh, picture)}
