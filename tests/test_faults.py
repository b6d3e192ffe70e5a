"""Faults from outside the config, injected for real into ``python -m train``: a file-size limit
(writes fail with EFBIG, a full disk without root), a second run into a busy workdir (and an
evaluation beside it, which needs no lock), Ctrl-C once and twice, a replaced and a truncated
tokenizer, a truncated and a corrupted data shard, a ``kill -9`` forced during an async save, a
workdir moved away while training. Each checks the exit code, the first line of the error (the
lines before it are the run's own log), and that the last complete checkpoint restores and
resumes bitwise equal to a run that never failed.

Every faulty run resumes the same half-trained workdir (steps 2, 4, 6 of 12); the reference
and the resumes run in this process, the faulty runs as the command a user types.
"""

import glob
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types

import jax
import numpy as np
import pytest

from multimodal_jax import workdir as workdir_lib
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import workdir_lock
from tests import env as test_env
from tests import runs

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL, EVERY, HALF = 12, 2, 6
TMP = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")
LIMITED = ("import os, resource, sys; limit = int(sys.argv[1]); "  # CPython ignores SIGXFSZ: EFBIG
           "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
           "os.execv(sys.argv[2], sys.argv[2:])")
CONFIG = '''"""The tiny contrastive run of tests/test_faults.py."""
from tests import tiny


def get_config():
    config = tiny.tiny_shapes_config({data_dir!r})
    config.total_steps, config.checkpoint_every_steps = {total}, {every}
    config.log_every_steps, config.eval_every_steps = {every}, 1000
    return config
'''


@pytest.fixture(scope="module")
def base(shapes_data_dir, tmp_path_factory):
    """The config file, its config, the final params of a run that never failed, and a workdir
    stopped at step ``HALF`` that every faulty run resumes."""
    root = tmp_path_factory.mktemp("faults")
    config_file = root / "faults_config.py"
    config_file.write_text(CONFIG.format(data_dir=shapes_data_dir, total=TOTAL, every=EVERY))
    spec = importlib.util.spec_from_file_location("faults_config", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    loop.train_and_evaluate(config, str(root / "straight"), stop_at_step=TOTAL)
    loop.train_and_evaluate(config, str(root / "half"), stop_at_step=HALF)
    assert workdir_lib.saved_steps(str(root / "half")) == [2, 4, 6]
    return types.SimpleNamespace(config_file=str(config_file), config=config, half=str(root / "half"),
                                 straight=runs.final_params(str(root / "straight")))


def _half_copy(base, tmp_path) -> str:
    workdir = str(tmp_path / "run")
    shutil.copytree(base.half, workdir)
    return workdir


def _start(base, workdir: str, *flags: str, file_size_limit: int | None = None) -> subprocess.Popen:
    """``python -m train`` on the faults config, its output in files (pipes can fill)."""
    env = test_env.with_devices(8, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "train", "--config", base.config_file, "--workdir", workdir, *flags]
    if file_size_limit:  # set by a launcher that then becomes the run (no fork-time hook here)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "1000000"  # no cut-short cache entries
        command = [sys.executable, "-c", LIMITED, str(file_size_limit), *command]
    log = f"{workdir}.{time.time_ns()}"
    with open(log + ".out", "w") as out, open(log + ".err", "w") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
    process.log = log
    return process


def _stderr(process) -> str:
    with open(process.log + ".err") as f:
        return f.read()


def _finish(process, timeout: float = 600) -> tuple[int, str]:
    """The exit code and standard error of a run, once it ended."""
    code = process.wait(timeout=timeout)
    return code, _stderr(process)


def _error_line(stderr: str) -> str:
    """The first line of the error paragraph (the lines before it are the run's log)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert lines, stderr[-3000:]
    return lines[0]


def _wait_for(process, predicate, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended (code {process.returncode}) before {what}:\n" \
                                       f"{_stderr(process)[-3000:]}"
        assert time.time() < deadline, f"no {what}"
        time.sleep(0.01)


def _assert_resumes_bitwise(base, workdir: str, **data) -> None:
    """Resumes ``workdir`` to the end (in this process) and compares with the straight run."""
    config = base.config.copy_and_resolve_references()
    config.data.update(data)
    loop.train_and_evaluate(config, workdir, stop_at_step=TOTAL)
    step, params = runs.final_params(workdir)
    assert step == base.straight[0] == TOTAL
    jax.tree.map(np.testing.assert_array_equal, params, base.straight[1])
    assert not [n for n in os.listdir(workdir_lib.checkpoint_dir(workdir)) if TMP.match(n)]


def test_a_full_disk_stops_the_run_at_once_and_keeps_the_previous_checkpoint(base, tmp_path):
    workdir = _half_copy(base, tmp_path)
    code, err = _finish(_start(base, workdir, file_size_limit=100_000))  # data files are larger
    assert code == 4, err[-3000:]
    line = _error_line(err)
    assert line.startswith("error: Writing the checkpoint of step 8 failed: File too large (EFBIG), "
                           f"writing {workdir_lib.checkpoint_dir(workdir)}/8.orbax-checkpoint-tmp")
    assert "a file-size limit (100,000 bytes here)" in line and " free of " in line
    assert f"The newest complete checkpoint, step {HALF} " in line and "rerun the same command" in line
    assert "Traceback" not in err and "exception was never retrieved" not in err
    assert workdir_lib.saved_steps(workdir) == [2, 4, 6]  # step 8 was never finished; none deleted
    _assert_resumes_bitwise(base, workdir)


def test_a_second_run_into_a_busy_workdir_is_refused(base, tmp_path):
    workdir = _half_copy(base, tmp_path)
    lock = os.path.join(workdir, workdir_lock.LOCK)
    first = _start(base, workdir)
    _wait_for(first, lambda: os.path.exists(lock) and f'"pid": {first.pid},' in open(lock).read(),
              "the first run's lock")
    os.kill(first.pid, signal.SIGSTOP)  # the first run holds the lock while the second starts
    try:
        code, err = _finish(_start(base, workdir))
        evaluation = subprocess.run(  # a reader needs no lock and leaves the writer's files alone
            [sys.executable, "-m", "train.evaluate", "--config", base.config_file, "--workdir", workdir],
            cwd=ROOT, env=test_env.with_devices(8, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
            text=True, timeout=600)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert code == 2, err[-3000:]
    assert _error_line(err).startswith(f"error: The workdir {workdir} is in use by another training "
                                       f"run, pid {first.pid} on host ")
    assert "Traceback" not in err and "Restored" not in err
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert json.loads(evaluation.stdout.strip().splitlines()[-1])["step"] >= HALF
    code, err = _finish(first)  # undisturbed: it ends as a run that never failed
    assert code == 0, err[-3000:]
    assert not os.path.exists(lock)
    step, params = runs.final_params(workdir)
    assert step == TOTAL
    jax.tree.map(np.testing.assert_array_equal, params, base.straight[1])


def _started(process) -> bool:
    """Whether the run's signal handlers are in place (it logs this once its task is built)."""
    return "Data and tokenizer ready" in _stderr(process)


def test_ctrl_c_stops_after_the_step_with_a_complete_checkpoint(base, tmp_path):
    workdir = _half_copy(base, tmp_path)
    process = _start(base, workdir)
    _wait_for(process, lambda: _started(process), "the start of training")
    process.send_signal(signal.SIGINT)  # before step 7 ends: the run stops after it
    code, err = _finish(process)
    assert code == 130, err[-3000:]
    assert "Ctrl-C (SIGINT) received: stopping after the current step with a complete checkpoint" in err
    assert ("Interrupted (Ctrl-C): stopped at step 7 with a complete checkpoint; rerun the same "
            "command to resume.") in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert workdir_lib.saved_steps(workdir)[-1] == 7
    _assert_resumes_bitwise(base, workdir)


def test_ctrl_c_twice_ends_the_run_at_once(base, tmp_path, caplog):
    workdir = _half_copy(base, tmp_path)
    process = _start(base, workdir)
    _wait_for(process, lambda: _started(process), "the start of training")
    process.send_signal(signal.SIGINT)
    _wait_for(process, lambda: "Ctrl-C (SIGINT) received" in _stderr(process), "the first Ctrl-C")
    process.send_signal(signal.SIGINT)
    code, err = _finish(process)
    assert code == -signal.SIGINT, err[-3000:]  # ended by the signal itself (a shell says 130)
    assert "Traceback" not in err
    assert workdir_lib.saved_steps(workdir)[-1] in (HALF, 7)  # step 7's save was maybe not done
    with caplog.at_level(logging.WARNING):
        _assert_resumes_bitwise(base, workdir)
    assert f"Taking over the lock of {workdir} left by pid {process.pid}" in caplog.text


def test_a_workdir_moved_away_while_training_stops_the_run_clearly(base, tmp_path):
    """A workdir deleted or moved under a run: the next save (here the one SIGTERM asks for)
    stops it with one paragraph instead of writing a lone checkpoint where the workdir was."""
    workdir = _half_copy(base, tmp_path)
    process = _start(base, workdir)
    _wait_for(process, lambda: "Restored step 6 from" in _stderr(process), "the restore")
    os.rename(workdir, workdir + ".moved")
    process.send_signal(signal.SIGTERM)
    code, err = _finish(process, timeout=300)
    assert code == 4, err[-3000:]
    assert _error_line(err).startswith(f"error: The workdir {workdir} was deleted or moved while this "
                                       "run trained in it")
    assert "Traceback" not in err and "Preempted" not in err
    shutil.rmtree(workdir, ignore_errors=True)  # what the run made again where the workdir was
    os.rename(workdir + ".moved", workdir)  # put back, as the error says
    _assert_resumes_bitwise(base, workdir)


@pytest.mark.parametrize("damage", ["replaced", "truncated"])
def test_a_damaged_tokenizer_is_a_clear_error(base, tmp_path, damage):
    workdir = _half_copy(base, tmp_path)
    path = os.path.join(workdir, workdir_lib.TOKENIZER)
    with open(path, "rb") as f:
        original = f.read()
    with open(path, "wb") as f:
        f.write(os.urandom(len(original)) if damage == "replaced" else original[: len(original) // 3])
    code, err = _finish(_start(base, workdir))
    assert code == 2, err[-3000:]
    line = _error_line(err)
    assert line.startswith(f"error: {path} differs from the one the checkpoints in "
                           f"{workdir_lib.checkpoint_dir(workdir)} (steps 2..6) were trained with")
    assert "delete it and rerun the same command" in line and "Traceback" not in err
    if damage == "replaced":  # restored from a backup
        with open(path, "wb") as f:
            f.write(original)
    else:  # deleted, as the error says: trained again, and used since it matches
        os.remove(path)
    _assert_resumes_bitwise(base, workdir)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_data_shard_is_named_with_how_to_rebuild_it(base, shapes_data_dir, tmp_path, damage):
    data_dir = str(tmp_path / "tfds")
    shutil.copytree(shapes_data_dir, data_dir)
    shard = glob.glob(os.path.join(data_dir, "**", "*-train.tfrecord-*"), recursive=True)[0]
    with open(shard, "rb") as f:
        original = f.read()
    if damage == "truncated":
        os.truncate(shard, len(original) * 2 // 3)
    else:  # bytes changed in place, inside an early record: the first batches meet it
        with open(shard, "r+b") as f:
            f.seek(len(original) // 4)
            f.write(bytes(b ^ 0xFF for b in original[len(original) // 4: len(original) // 4 + 8]))
    workdir = _half_copy(base, tmp_path)
    code, err = _finish(_start(base, workdir, f"--config.data.data_dir={data_dir}"))
    assert code == 2, err[-3000:]
    line = _error_line(err)
    assert line.startswith(f"error: The train shard {shard} of dataset 'captioned_shapes/tiny' is damaged: ")
    assert "this version of the built-in dataset) and rerun" in line and "Traceback" not in err
    if damage == "truncated":  # found before anything heavy ran
        assert "it is cut short" in line and "Restored" not in err
    else:  # met while training: the last finished step is checkpointed
        assert "corrupted record" in line and f"its last finished step, {HALF}, is checkpointed" in line
    with open(shard, "wb") as f:  # rebuilt
        f.write(original)
    _assert_resumes_bitwise(base, workdir, data_dir=data_dir)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def test_a_kill_during_an_async_save_resumes_from_the_previous_step(base, tmp_path):
    """Forced: the run is frozen (SIGSTOP) as soon as a save's temporary folder appears, killed
    only if that save is still unfinished, else let go to the next save."""
    workdir = _half_copy(base, tmp_path)
    directory = workdir_lib.checkpoint_dir(workdir)
    process = _start(base, workdir)
    killed_during = None
    while killed_during is None:
        assert process.poll() is None, f"no save was caught unfinished:\n{_stderr(process)[-3000:]}"
        saving = [int(m.group(1)) for m in map(TMP.match, os.listdir(directory)) if m]
        if not saving or max(saving) <= HALF:
            time.sleep(0.001)
            continue
        os.kill(process.pid, signal.SIGSTOP)
        while not _stopped(process.pid):
            time.sleep(0.001)
        step = max(saving)
        unfinished = str(step) not in os.listdir(directory) and any(
            TMP.match(n) and TMP.match(n).group(1) == str(step) for n in os.listdir(directory))
        if unfinished:
            process.kill()
            killed_during = step
        os.kill(process.pid, signal.SIGCONT)
        while not unfinished and str(step) not in os.listdir(directory) and process.poll() is None:
            time.sleep(0.001)  # let this save finish before looking for the next one
    assert process.wait() == -signal.SIGKILL
    assert killed_during not in workdir_lib.saved_steps(workdir)
    assert workdir_lib.saved_steps(workdir)[-1] == killed_during - EVERY  # the previous one
    _assert_resumes_bitwise(base, workdir)
