"""The training loop end to end on the built-in dataset: a run stopped and resumed ends
bitwise-equal to one that never stopped (the contrastive task, and classification with mixup /
CutMix, whose random keys must resume too); metrics, TensorBoard events and a picture appear."""

import json
import os

import jax
import numpy as np

from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax import tasks
from tests import tiny, tiny_gan


def _final_params(config, workdir):
    task = tasks.get_task(config.task)(config, workdir)
    template = jax.device_put(task.create_state(jax.random.key(config.seed)),
                              mesh_lib.replicated(mesh_lib.data_mesh()))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    state = ckpt.restore(template)
    ckpt.close()
    return int(state.step), jax.device_get(state.params)


def assert_resume_equals_straight(config, tmp_path, stop_at_step: int) -> dict:
    """Trains ``config`` straight through and with a stop at ``stop_at_step`` then a resume;
    the final parameters must be bitwise equal. Returns the straight run's metrics."""
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    metrics = loop.train_and_evaluate(config, straight)
    stopped = loop.train_and_evaluate(config, resumed, stop_at_step=stop_at_step)
    assert stopped["step"] == stop_at_step
    loop.train_and_evaluate(config, resumed)
    step_a, params_a = _final_params(config, straight)
    step_b, params_b = _final_params(config, resumed)
    assert step_a == step_b == config.total_steps
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
    return metrics


def test_resume_is_bitwise_equal_to_uninterrupted(shapes_data_dir, tmp_path):
    config = tiny.tiny_shapes_config(shapes_data_dir)
    metrics = assert_resume_equals_straight(config, tmp_path, stop_at_step=4)
    straight = str(tmp_path / "straight")

    assert metrics["step"] == config.total_steps
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1",
                "train/loss"):
        assert 0.0 <= metrics[key] <= 1.0 or key == "train/loss", key
    lines = [json.loads(l) for l in open(os.path.join(straight, "metrics.jsonl"))]
    assert [l["step"] for l in lines if "train/loss" in l] == [2, 4, 6]
    assert os.listdir(os.path.join(straight, "tensorboard"))
    pictures = os.listdir(os.path.join(straight, "pictures"))
    assert any(p.endswith(".png") for p in pictures)


def test_classification_with_random_mixing_resumes_bitwise(shapes_data_dir, tmp_path):
    """Mixup / CutMix draw from the step's key: a resumed run draws what the straight one did."""
    config = tiny_gan.tiny_classifier_config(shapes_data_dir)
    config.update(total_steps=6, checkpoint_every_steps=3, log_every_steps=3, eval_every_steps=6)
    config.mix.kind = "both"
    assert_resume_equals_straight(config, tmp_path, stop_at_step=3)
