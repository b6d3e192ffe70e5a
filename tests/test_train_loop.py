"""The training loop end to end on the built-in dataset: a run stopped and resumed ends
bitwise-equal to one that never stopped; metrics, TensorBoard events and a picture appear."""

import json
import os

import jax
import numpy as np

from multimodal_jax import checkpoint, loop, parallel, tasks
from tests import tiny


def _final_params(config, workdir):
    task = tasks.get_task(config.task)(config, workdir)
    template = jax.device_put(task.create_state(jax.random.key(config.seed)),
                              parallel.replicated(parallel.data_mesh()))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    state = ckpt.restore(template)
    ckpt.close()
    return int(state.step), jax.device_get(state.params)


def test_resume_is_bitwise_equal_to_uninterrupted(shapes_data_dir, tmp_path):
    config = tiny.tiny_shapes_config(shapes_data_dir)
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    metrics = loop.train_and_evaluate(config, straight)
    stopped = loop.train_and_evaluate(config, resumed, stop_at_step=4)
    assert stopped["step"] == 4
    loop.train_and_evaluate(config, resumed)
    step_a, params_a = _final_params(config, straight)
    step_b, params_b = _final_params(config, resumed)
    assert step_a == step_b == config.total_steps
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)

    assert metrics["step"] == config.total_steps
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1",
                "train/loss"):
        assert 0.0 <= metrics[key] <= 1.0 or key == "train/loss", key
    lines = [json.loads(l) for l in open(os.path.join(straight, "metrics.jsonl"))]
    assert [l["step"] for l in lines if "train/loss" in l] == [2, 4, 6]
    assert os.listdir(os.path.join(straight, "tensorboard"))
    pictures = os.listdir(os.path.join(straight, "pictures"))
    assert any(p.endswith(".png") for p in pictures)
