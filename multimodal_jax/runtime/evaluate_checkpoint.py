"""Evaluation of a saved run: restore the newest checkpoint of a workdir and evaluate it; or,
for a workdir without checkpoints and a config with ``init_from``, evaluate the pretrained
weights as they are (step 0), e.g. a published CLIP's zero-shot accuracy."""

import jax
import ml_collections

from multimodal_jax import tasks
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import prerequisites
from multimodal_jax.runtime import run_record


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Metrics of the newest restorable checkpoint in ``workdir`` (or of ``init_from``'s
    weights when it has none), with its ``step``. The state is laid out as training lays it
    out (``config.parallel``: mesh and FSDP rules)."""
    config_checks.validate(config, workdir)
    config = prerequisites.resolve(config, workdir)
    has_checkpoint = workdir_lib.latest_step(workdir) is not None
    if has_checkpoint:
        run_record.check_matches(config, workdir)
    if not has_checkpoint and not config.get("init_from"):
        raise FileNotFoundError(f"No checkpoints in {workdir!r}: train first with "
                                "`python -m train --config ... --workdir ...`, or set "
                                "config.init_from to evaluate pretrained weights.")
    task = tasks.get_task(config.task)(config, workdir)
    mesh = mesh_lib.mesh_from_config(config.parallel)
    ckpt = (checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir), config.keep_checkpoints)
            if has_checkpoint else None)
    try:
        state = checkpoint.restore_or_init(ckpt, task.create_state, jax.random.key(config.seed),
                                           mesh, mesh_lib.layout(config.parallel))
    finally:
        if ckpt is not None:
            ckpt.close()
    step = int(jax.device_get(state.step))
    picture = workdir_lib.picture_path(workdir, f"{task.name}_eval_step{step}")
    return {"step": step, **task.evaluate(state.params, mesh, picture)}
