"""``python -m train`` killed with SIGKILL at random moments (async checkpoint saves included)
and stopped with SIGTERM, resumed each time, ends with parameters bitwise equal to a run that
was never interrupted; SIGTERM exits 0 within seconds with a complete checkpoint.

The kill moments are random; the seed is printed (``-s``) and ``RELIABILITY_KILL_SEED=N``
replays a run's schedule.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from tests import env as test_env
from tests import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_STEPS, EVERY = 30, 2
KILLS = 3
TMP = ".orbax-checkpoint-tmp"


def _overrides(data_dir: str) -> dict:
    return {"data.data_dir": data_dir, "total_steps": TOTAL_STEPS, "checkpoint_every_steps": EVERY,
            "log_every_steps": EVERY, "eval_every_steps": 1000, "keep_checkpoints": 2}


def _start(workdir: str, data_dir: str) -> subprocess.Popen:
    env = test_env.with_devices(8, TF_CPP_MIN_LOG_LEVEL="2")  # the suite's compilation cache
    command = [sys.executable, "-m", "train", "--config", "configs/clip_shapes_smoke.py",
               "--workdir", workdir] + [f"--config.{k}={v}" for k, v in _overrides(data_dir).items()]
    log = os.path.join(workdir + ".logs", f"{time.time_ns()}")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log + ".out", "w") as out, open(log + ".err", "w") as err:  # files: pipes can fill
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
    process.log = log
    return process


def _output(process: subprocess.Popen) -> tuple[str, str]:
    """The process's standard output and error so far."""
    return tuple(open(process.log + suffix).read() for suffix in (".out", ".err"))


def _steps(workdir: str) -> list[int]:
    """The finished checkpoints (Orbax's own listing ignores temporary folders the same way)."""
    directory = os.path.join(workdir, "checkpoints")
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(n) for n in names if n.isdigit())


def _wait_for_progress(process: subprocess.Popen, workdir: str, timeout: float = 300) -> None:
    """Returns once the process has finished a checkpoint beyond the newest one there was."""
    before = max(_steps(workdir), default=0)
    deadline = time.time() + timeout
    while max(_steps(workdir), default=0) <= before:
        if process.poll() is not None:
            raise AssertionError(f"the run ended (code {process.returncode}) before a new "
                                 f"checkpoint:\n{_output(process)[1][-3000:]}")
        assert time.time() < deadline, "no progress"
        time.sleep(0.02)


def _save_interval(process: subprocess.Popen, workdir: str) -> float:
    """Watches a run to its end; the median time between two of its checkpoints."""
    seen, times = 0, []
    while process.poll() is None:
        newest = max(_steps(workdir), default=0)
        if newest > seen:
            seen, times = newest, times + [time.time()]
        time.sleep(0.02)
    return float(np.median(np.diff(times[1:]))) if len(times) > 3 else 1.0


def _finish(workdir: str, data_dir: str) -> dict:
    """Runs the command to the end; its last line of output, as JSON."""
    process = _start(workdir, data_dir)
    code = process.wait(timeout=600)
    out, err = _output(process)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_killed_and_preempted_runs_resume_bitwise_equal(shapes_data_dir, tmp_path):
    seed = int(os.environ.get("RELIABILITY_KILL_SEED", time.time_ns() % 1_000_000))
    print(f"RELIABILITY_KILL_SEED={seed}")
    rng = random.Random(seed)
    workdir = str(tmp_path / "interrupted")
    straight = str(tmp_path / "straight")
    process = _start(straight, shapes_data_dir)  # never interrupted; fills the cache
    interval = _save_interval(process, straight)
    assert process.wait() == 0, _output(process)[1][-3000:]

    process = _start(workdir, shapes_data_dir)  # SIGTERM: a preemption notice
    _wait_for_progress(process, workdir)
    noticed = time.time()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=300)
    out, err = _output(process)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    assert time.time() - noticed < 60  # seconds on a quiet machine; CI machines are not quiet
    result = json.loads(out.strip().splitlines()[-1])
    assert result["preempted"] is True and result["step"] == max(_steps(workdir))

    for _ in range(KILLS):  # SIGKILL at a random moment within a save interval after progress
        process = _start(workdir, shapes_data_dir)
        _wait_for_progress(process, workdir)
        time.sleep(rng.uniform(0.0, 1.5 * interval))
        process.kill()
        assert process.wait() == -signal.SIGKILL, "the run ended before its kill"

    assert _finish(workdir, shapes_data_dir)["step"] == TOTAL_STEPS  # the same command
    assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if TMP in n]
    step_a, params_a = runs.final_params(straight)
    step_b, params_b = runs.final_params(workdir)
    assert step_a == step_b == TOTAL_STEPS
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
