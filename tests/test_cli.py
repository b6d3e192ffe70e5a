"""The command-line entry points, as a user runs them: ``python -m train`` then
``python -m train.evaluate``, whose last line of output is one JSON object of metrics."""

import json
import os
import subprocess
import sys
import types

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


def test_tensorstore_closed_loop_reports_are_dropped():
    """asyncio's "Event loop is closed" raised in ``call_soon_threadsafe`` (a failed save's
    writes ending after Orbax closed its loop), whether TensorStore reports it through
    ``sys.excepthook`` or as unraisable, is not printed; anything else is."""
    def call_soon_threadsafe():  # where asyncio raises it
        raise RuntimeError("Event loop is closed")

    def raised(function):
        try:
            function()
        except RuntimeError as error:
            return error

    def elsewhere():
        raise RuntimeError("Event loop is closed")

    printed = []
    excepthook = common._without_closed_loop_callbacks(lambda kind, value, tb: printed.append(value))
    unraisablehook = common._without_closed_loop_unraisable(lambda u: printed.append(u.exc_value))
    for function in (call_soon_threadsafe, elsewhere):
        error = raised(function)
        excepthook(type(error), error, error.__traceback__)
        unraisablehook(types.SimpleNamespace(exc_type=type(error), exc_value=error,
                                             exc_traceback=error.__traceback__, object=None))
    assert [str(e) for e in printed] == ["Event loop is closed"] * 2
    assert all(e.__traceback__.tb_next.tb_frame.f_code.co_name == "elsewhere" for e in printed)
