"""One writer per workdir (``runtime/workdir_lock.py``): a held lock refuses a second run and
names the holder, a lock left by a dead process (or a pid reused since) is taken over with a
warning, another host's lock is refused with how to remove it, and training refuses a workdir
another run holds before anything heavy runs."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import workdir_lock
from tests import env as test_env
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_holder(workdir, **holder) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, workdir_lock.LOCK), "w") as f:
        json.dump({"host": socket.gethostname(), "started": "2026-12-01T00:00:00+00:00", **holder}, f)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_names_its_holder_and_is_removed_on_release(tmp_path):
    lock = workdir_lock.WorkdirLock(str(tmp_path / "run"))
    lock.acquire()
    holder = json.loads((tmp_path / "run" / workdir_lock.LOCK).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert workdir_lock.is_alive(holder) is True
    lock.release()
    assert not (tmp_path / "run" / workdir_lock.LOCK).exists()


def test_a_workdir_moved_or_taken_while_held_is_found_gone(tmp_path):
    """``check_still_held`` (before each save) and the errors of a restore whose folder went:
    moved away, or made again and locked by another run, the workdir is not the run's any more."""
    workdir = str(tmp_path / "run")
    lock = workdir_lock.WorkdirLock(workdir)
    lock.acquire()
    try:
        workdir_lock.check_still_held(workdir)  # still there: no error
        assert loop._write_failure(ValueError("a bad value"), workdir) is None  # not a fault
        os.rename(workdir, workdir + ".moved")
        with pytest.raises(workdir_lock.WorkdirGone, match="it no longer exists"):
            workdir_lock.check_still_held(workdir)
        gone = loop._write_failure(checkpoint.CheckpointError("None of the checkpoints ..."), workdir)
        assert isinstance(gone, workdir_lock.WorkdirGone)
        assert str(gone).startswith(f"The workdir {workdir} was deleted or moved while this run "
                                    "trained in it")
        _write_holder(workdir, pid=_dead_pid())  # another run made it again meanwhile
        with pytest.raises(workdir_lock.WorkdirGone, match="gone or names another process"):
            workdir_lock.check_still_held(workdir)
    finally:
        lock.release()
    assert os.path.exists(os.path.join(workdir, workdir_lock.LOCK))  # not ours: not removed


def test_a_held_lock_refuses_a_second_holder(tmp_path):
    first = workdir_lock.WorkdirLock(str(tmp_path))
    first.acquire()
    try:  # a second open file description of the same file: flock refuses it, as for a process
        with pytest.raises(workdir_lock.WorkdirLocked) as error:
            workdir_lock.WorkdirLock(str(tmp_path)).acquire()
        assert f"is in use by another training run, pid {os.getpid()} on host {socket.gethostname()}" \
            in str(error.value)
        assert "needs no lock" in str(error.value)
    finally:
        first.release()


def test_a_lock_held_by_another_process_is_refused(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from multimodal_jax.runtime import workdir_lock; "
         "workdir_lock.WorkdirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
         str(tmp_path)], cwd=ROOT, env=test_env.with_devices(1), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(workdir_lock.WorkdirLocked, match=f"pid {holder.pid} on host"):
            workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = workdir_lock.WorkdirLock(str(tmp_path))  # killed: the kernel let its lock go
    lock.acquire()
    lock.release()


@pytest.mark.parametrize("left_by", ["dead_pid", "reused_pid"])
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog, left_by):
    pid = _dead_pid() if left_by == "dead_pid" else os.getpid()  # reused: another start time
    _write_holder(str(tmp_path), pid=pid, process_start="1")
    lock = workdir_lock.WorkdirLock(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        lock.acquire()
    assert f"left by pid {pid} on host" in caplog.text and "no longer running" in caplog.text
    assert json.loads((tmp_path / workdir_lock.LOCK).read_text())["process_start"] != "1"
    lock.release()


def test_another_hosts_lock_is_refused_with_how_to_remove_it(tmp_path):
    _write_holder(str(tmp_path), host="elsewhere", pid=1)
    with pytest.raises(workdir_lock.WorkdirLocked) as error:
        workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    assert "pid 1 on host elsewhere" in str(error.value) and "cannot check" in str(error.value)
    assert f"delete {tmp_path / workdir_lock.LOCK}" in str(error.value)


def test_training_refuses_a_workdir_another_run_holds(shapes_data_dir, tmp_path):
    config = tiny.tiny_shapes_config(shapes_data_dir)
    holder = workdir_lock.WorkdirLock(str(tmp_path))
    holder.acquire()
    try:
        with pytest.raises(workdir_lock.WorkdirLocked, match="in use by another training run"):
            loop.train_and_evaluate(config, str(tmp_path))
    finally:
        holder.release()
    assert sorted(os.listdir(tmp_path)) == []  # no tokenizer, no checkpoint, no lock left
