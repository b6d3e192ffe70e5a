"""One writer per workdir: a training run holds ``WORKDIR/lock.json`` (process 0 of a multi-host
job) and a second run into the same workdir stops with an error saying who holds it.

The file names the holder (host, pid, start time) and is locked with ``flock``, which the
kernel releases when the holder dies, ``kill -9`` included, so a lock left behind is told from
a live one without guessing. A file left by a dead process is taken over with a warning; when
the file system cannot lock files (some network and FUSE mounts), a file naming this host and a
pid that is gone (or reused by another process since) is taken over the same way, and one from
another host is refused, with how to remove it. Readers (``train.evaluate``, ``inference``)
take no lock and never wait for one. In a bucket (``gs://``) the lock is an object created only
if absent (``bucket_lock.py``).
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
from typing import Iterator
from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

from multimodal_jax import paths
from multimodal_jax.runtime import bucket_lock
from multimodal_jax.runtime import holders
from multimodal_jax.runtime import write_failures

log = logging.getLogger(__name__)
LOCK = "lock.json"


WorkdirLocked = holders.WorkdirLocked


class WorkdirGone(RuntimeError):
    """The workdir this run trains in no longer holds its lock file: it was deleted or moved
    (or the file removed) while the run trained."""


is_alive = holders.is_alive
describe = holders.describe
_parse = holders.parse


class WorkdirLock:
    """``WORKDIR/lock.json`` held by this process: ``acquire()`` or ``WorkdirLocked``;
    ``release()`` removes it."""

    def __init__(self, workdir: str):
        self.workdir = os.path.abspath(workdir)
        self.path = os.path.join(self.workdir, LOCK)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Takes the lock: ``WorkdirLocked`` when a live run holds it, ``WriteFailed`` when the
        lock file cannot be written (a full disk)."""
        try:
            self._acquire()
        except OSError as error:
            if not write_failures.is_write_failure(error):
                raise
            raise write_failures.WriteFailed(
                f"the workdir's lock file ({LOCK})", self.path,
                write_failures.cause_of(error)).keeping(self.workdir) from error

    def _acquire(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        for _ in range(10):  # another run may remove or replace the file meanwhile: try again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
                if locked and not self._still_the_file(fd):
                    os.close(fd)
                    continue
                self._take(fd, locked)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return
        raise WorkdirLocked(f"Could not lock {self.path}: other runs keep replacing it.")

    def _flock(self, fd: int) -> bool:
        """Locks the open file; False where the file system cannot lock files."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self.held_error(self._read(fd), alive=True) from None
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            log.warning("The file system of %s cannot lock files (%s): only a lock file of "
                        "this host's processes can be checked.", self.workdir, error.strerror)
            return False
        return True

    def _still_the_file(self, fd: int) -> bool:
        """Whether the path still names the file locked through ``fd`` (the previous holder
        may have removed it on release, and a third run made a new one)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _read(fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        return _parse(os.read(fd, 65536).decode("utf-8", errors="replace"))

    def _take(self, fd: int, locked: bool) -> None:
        """Writes this process into the lock file; a file naming a process that is gone is
        taken over with a warning."""
        previous = self._read(fd)
        if previous:
            alive = is_alive(previous)
            if not locked and alive is not False:  # nothing tells us it is gone
                raise self.held_error(previous, alive)
            if locked and alive is None:  # a remote holder's lock may not reach this host
                raise self.held_error(previous, alive)
            if locked and alive:  # its process runs, but does not hold the file: refuse too
                raise self.held_error(previous, alive)
            log.warning("Taking over the lock of %s left by %s, which is no longer running "
                        "(it was stopped without releasing it, e.g. by kill -9).",
                        self.workdir, describe(previous))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        data = (json.dumps(holders.this_process(), indent=1) + "\n").encode()
        while data:  # a write may be partial (a file-size limit): the next one says why
            data = data[os.write(fd, data):]
        os.fsync(fd)

    def held_error(self, holder: dict, alive: Optional[bool]) -> WorkdirLocked:
        """The error naming ``holder`` (``alive``: whether it still runs, None when this host
        cannot tell); ``hold`` asks either kind of lock for it."""
        who = describe(holder) if holder else "another process"
        if alive is None:
            return WorkdirLocked(
                f"The workdir {self.workdir} is locked by a training run, {who}, which this host "
                f"cannot check. Two runs in one workdir would write checkpoints of the same steps "
                f"over each other. If that run is no longer running, delete {self.path} and rerun; "
                "otherwise train in another --workdir. Evaluating (train.evaluate) needs no lock.")
        return WorkdirLocked(
            f"The workdir {self.workdir} is in use by another training run, {who}. Two runs in one "
            "workdir would write checkpoints of the same steps over each other. Wait for it to "
            "finish, or stop it (Ctrl-C or SIGTERM saves a checkpoint) and rerun this command to "
            "resume; or train in another --workdir. Evaluating (train.evaluate) needs no lock.")

    def release(self) -> None:
        """Removes the lock file (while still holding it, and only if the path still names it:
        the workdir may have been deleted and made again by another run) and lets it go."""
        if self._fd is None:
            return
        if self._still_the_file(self._fd):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        os.close(self._fd)
        self._fd = None


def _names_this_process(workdir: str) -> bool:
    if paths.is_gcs(workdir):
        return bucket_lock.BucketLock(workdir, LOCK).names_this_process()
    try:
        holder = _parse(paths.as_path(os.path.join(workdir, LOCK)).read_text())
    except OSError:
        return False
    return holders.is_this_process(holder)


def gone_error(workdir: str) -> Optional[WorkdirGone]:
    """``WorkdirGone`` when ``workdir`` (held by this process, process 0) no longer holds a lock
    file naming this process, else None (always None on the other processes)."""
    workdir = paths.absolute(workdir)
    path = os.path.join(workdir, LOCK)
    if jax.process_index() != 0 or _names_this_process(workdir):
        return None
    how = ("it no longer exists" if not paths.as_path(workdir).is_dir() else
           f"its lock file {path} is gone or names another process")
    return WorkdirGone(
        f"The workdir {workdir} was deleted or moved while this run trained in it ({how}). The "
        "run stopped without saving: a checkpoint written there now would lack the run's other "
        "files (its config record, tokenizer, metrics) and could meet another run's. Put the "
        "workdir back (or restore it from a backup) and rerun the same command to resume from "
        "its newest checkpoint, or rerun with a new --workdir to start over.")


def check_still_held(workdir: str) -> None:
    """``WorkdirGone`` on every process when process 0 finds that ``workdir`` no longer holds
    this run's lock file; call it before writing a checkpoint."""
    error = gone_error(workdir)
    if not _agreed(error is None):
        raise error or WorkdirGone(f"Process 0 found the workdir {workdir} deleted or moved; "
                                   "its error says more.")


def _agreed(ok: bool) -> bool:
    """``ok`` on every process of the job."""
    if jax.process_count() == 1:
        return ok
    return bool(np.min(multihost_utils.process_allgather(np.int32(ok))))


def _lock_for(workdir: str):
    """The lock of ``workdir``: an object in a bucket, else a locked file."""
    if paths.is_gcs(workdir):
        return bucket_lock.BucketLock(paths.absolute(workdir), LOCK)
    return WorkdirLock(workdir)


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
    """Holds ``workdir``'s lock for the block (process 0 takes it, every process learns the
    outcome); ``WorkdirLocked`` on every process when another run holds it."""
    lock, error = _lock_for(workdir), None
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except (WorkdirLocked, write_failures.WriteFailed) as e:
            error = e
    if not _agreed(error is None):  # process 0's outcome, on every process
        try:
            holder = _parse(paths.as_path(lock.path).read_text())
        except OSError:
            holder = {}
        if error is None and not holder:  # (process 0 reports why)
            error = WorkdirLocked(f"Process 0 could not take the lock of {lock.workdir}; its "
                                  "error says why.")
        raise error or lock.held_error(holder, is_alive(holder) if holder else None)
    try:
        yield
    finally:
        lock.release()
