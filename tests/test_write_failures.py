"""Failed writes (``runtime/write_failures.py``, ``runtime/checkpoint.py``): the errno and file
are read from Orbax's and Python's errors, the message says what failed, why, the free space
and the checkpoint kept; a save that fails under a real file-size limit (EFBIG) raises
``WriteFailed`` and deletes no older checkpoint, even with ``max_to_keep=1``; so does a run's
first write, its lock file or its config record."""

import contextlib
import errno
import os
import resource

import numpy as np
import pytest

from multimodal_jax.cli import common
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import workdir_lock
from multimodal_jax.runtime import write_failures
from tests import tiny

ORBAX_TEXT = ('OUT_OF_RANGE: Error writing "opt_state.1.0.mu.scale/0" in OCDBT database at local '
              'file "/w/checkpoints/6.orbax-checkpoint-tmp/default/ocdbt.process_0/": Failed writing: '
              '"/w/checkpoints/6.orbax-checkpoint-tmp/default/ocdbt.process_0/d/0071": Failed to '
              "write 41804 bytes to file 14: File too large [os_error_code='27']")


def test_the_cause_is_read_from_orbax_text_and_from_os_errors():
    cause = write_failures.cause_of(ValueError(ORBAX_TEXT))
    assert cause.errno == errno.EFBIG
    assert cause.path == "/w/checkpoints/6.orbax-checkpoint-tmp/default/ocdbt.process_0/d/0071"
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device", "/w/metrics.jsonl")
    cause = write_failures.cause_of(wrapped)
    assert (cause.errno, cause.path) == (errno.ENOSPC, "/w/metrics.jsonl")
    assert write_failures.is_write_failure(wrapped)
    assert not write_failures.is_write_failure(FileNotFoundError(errno.ENOENT, "gone", "/x"))
    assert write_failures.cause_of(ValueError("something else")).errno is None


def test_the_message_says_what_why_where_and_what_is_kept(tmp_path):
    failure = write_failures.WriteFailed(
        "the checkpoint of step 9", str(tmp_path), write_failures.cause_of(ValueError(ORBAX_TEXT)))
    failure.kept_step, failure.checkpoints = 6, str(tmp_path)
    message = str(failure)
    assert message.startswith("Writing the checkpoint of step 9 failed: File too large (EFBIG), "
                              "writing /w/checkpoints/6.orbax-checkpoint-tmp/")
    assert "file-size limit" in message and "ulimit -f unlimited" in message
    assert "free of" in message and f"on the file system of {tmp_path}" in message
    assert f"step 6 (in {tmp_path}), is intact" in message and "rerun the same command" in message
    failure.kept_step = None
    assert "No checkpoint was complete yet" in str(failure)


def _size_limited(limit: int):
    """Sets this process's file-size limit (writes beyond it fail with EFBIG: CPython ignores
    SIGXFSZ); returns the previous limits."""
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, previous[1]))
    return previous


@pytest.mark.parametrize("max_to_keep", [1, 3])
def test_a_save_under_a_file_size_limit_fails_clearly_and_keeps_the_previous_one(tmp_path, max_to_keep):
    directory = str(tmp_path / "checkpoints")
    ckpt = checkpoint.Checkpointer(directory, max_to_keep)
    ckpt.save(tiny.small_train_state(1.0, 1))
    ckpt.wait()
    ckpt.save(tiny.small_train_state(2.0, 2))  # (everything this save runs is compiled now)
    ckpt.wait()
    previous = _size_limited(64)
    try:
        with pytest.raises(write_failures.WriteFailed) as error:
            ckpt.save(tiny.small_train_state(3.0, 3))
            ckpt.wait()
        with contextlib.suppress(write_failures.WriteFailed):  # (the same failure, again)
            ckpt.close()  # the save's other threads end under the limit too, as in a run
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
    assert error.value.cause.errno == errno.EFBIG
    assert str(error.value).startswith("Writing the checkpoint of step 3 failed: File too large")
    kept = [n for n in os.listdir(directory) if n.isdigit()]
    assert sorted(kept) == (["2"] if max_to_keep == 1 else ["1", "2"])
    reader = checkpoint.Checkpointer(directory, read_only=True)
    state = reader.restore(tiny.small_train_state())
    reader.close()
    assert int(state.step) == 2
    np.testing.assert_array_equal(state.params["w"], 2.0)


def test_a_full_disk_at_the_lock_is_a_write_failure(tmp_path):
    lock = workdir_lock.WorkdirLock(str(tmp_path))
    previous = _size_limited(16)  # a partial write, then EFBIG
    try:
        with pytest.raises(write_failures.WriteFailed) as error:
            lock.acquire()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        lock.release()
    assert str(error.value).startswith("Writing the workdir's lock file (lock.json) failed: File too "
                                       f"large (EFBIG), writing {tmp_path}/lock.json. The run stopped.")
    assert "No checkpoint was complete yet; once this is fixed, rerun the same command." in str(error.value)


def test_a_full_disk_when_training_starts_is_one_paragraph_and_exit_4(shapes_data_dir, tmp_path, capsys):
    """The run's first large write, its config record, fails before anything heavy runs."""
    workdir = str(tmp_path / "run")
    previous = _size_limited(600)  # the lock file and the fingerprints fit, the record does not
    try:
        with pytest.raises(SystemExit) as exit_info:
            common.run_or_exit(lambda: loop.train_and_evaluate(tiny.tiny_shapes_config(shapes_data_dir),
                                                               workdir, command=["train"]))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
    assert exit_info.value.code == common.WRITE_FAILED == 4
    err = capsys.readouterr().err
    assert err.startswith("error: Writing the record of the run (config.json, commands.jsonl) failed: "
                          f"File too large (EFBIG), writing {workdir}/config.json.tmp-")
    assert "No checkpoint was complete yet; once this is fixed, rerun the same command." in err
    assert len(err.splitlines()) == 1 and not os.path.exists(os.path.join(workdir, "lock.json"))
