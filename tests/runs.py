"""Helpers for tests that train tiny runs end to end: the final parameters of a workdir, and
the check that a run stopped and resumed ends bitwise equal to one that never stopped."""

import jax
import numpy as np

from multimodal_jax import workdir as workdir_lib
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import loop


def final_params(workdir: str) -> tuple[int, dict]:
    """The step and params of ``workdir``'s newest checkpoint, read as saved (no model needed,
    whatever device layout wrote it)."""
    return workdir_lib.latest_step(workdir), jax.device_get(init_from.restore_params(workdir))


def assert_resume_equals_straight(config, tmp_path, stop_at_step: int) -> dict:
    """Trains ``config`` straight through and with a stop at ``stop_at_step`` then a resume;
    the final parameters must be bitwise equal. Returns the straight run's metrics."""
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    metrics = loop.train_and_evaluate(config, straight)
    stopped = loop.train_and_evaluate(config, resumed, stop_at_step=stop_at_step)
    assert stopped["step"] == stop_at_step
    loop.train_and_evaluate(config, resumed)
    step_a, params_a = final_params(straight)
    step_b, params_b = final_params(resumed)
    assert step_a == step_b == config.total_steps
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
    return metrics
