"""The command-line entry points, as a user runs them: ``python -m train`` then
``python -m train.evaluate``, whose last line of output is one JSON object of metrics."""

import json
import os
import subprocess
import sys

import pytest

from multimodal_jax.cli import common
from tests import env as test_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, workdir, data_dir):
    env = test_env.with_devices(8)
    result = subprocess.run(
        [sys.executable, "-m", module, "--config", "configs/clip_shapes_smoke.py",
         "--workdir", workdir, f"--config.data.data_dir={data_dir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_then_evaluate(shapes_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    trained = _run("train", workdir, shapes_data_dir)
    evaluated = _run("train.evaluate", workdir, shapes_data_dir)
    assert trained["step"] == evaluated["step"] == 6
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1",
                "retrieval/test/t2i_r10"):
        assert 0.0 <= evaluated[key] <= 1.0
        assert evaluated[key] == trained[key]  # same checkpoint, same numbers
    assert os.path.exists(os.path.join(workdir, "tokenizer.model"))


def test_ctrl_c_outside_a_training_step_exits_130_without_a_traceback(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exited:
        common.run_or_exit(interrupted)
    assert exited.value.code == common.INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.startswith("error: Interrupted (Ctrl-C) outside a training step") and "Traceback" not in err
