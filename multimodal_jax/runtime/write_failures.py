"""A write of the run that failed (no space, quota, file-size limit, read-only or I/O error,
permission) as one error the user can act on: what failed, where, why in words, the free space
there, the newest complete checkpoint (kept) and how to resume.

Orbax reports a failed array write from TensorStore as a ``ValueError`` whose text carries the
``os_error_code`` and the file; plain Python writes raise ``OSError``. ``cause_of`` reads
both, through chained and wrapped exceptions.
"""

import dataclasses
import errno
import os
import re
import resource
import shutil
from typing import Optional

from multimodal_jax import paths
from multimodal_jax import workdir as workdir_lib

# Errors that only a write can give: any OSError with one of these is a failed write.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)

_ADVICE = {
    errno.ENOSPC: "The file system is full: free space there, or move the workdir to a larger disk "
                  "and pass its new path as --workdir",
    errno.EDQUOT: "Your disk quota is used up: free space within it or have it raised",
    errno.EFBIG: "A file grew past the largest size allowed: a file-size limit ({limit}) or the "
                 "file system's own maximum; raise the limit (ulimit -f unlimited)",
    errno.EROFS: "The file system became read-only (often after disk errors): remount it "
                 "writable, or move the workdir",
    errno.EACCES: "Permission was denied: make the workdir writable by this user",
    errno.EPERM: "The operation was not permitted: make the workdir writable by this user",
    errno.EIO: "The device reported an I/O error: check the disk (dmesg) before going on",
}
_OS_CODE = re.compile(r"os_error_code='?(\d+)|\[Errno (\d+)\]")
_FILE = re.compile(r'(?:Failed writing|Error opening file|local file): "([^"]+)"')


@dataclasses.dataclass
class Cause:
    """Why a write failed: ``errno`` (None when unknown), the file, and the first line of the
    original error."""

    errno: Optional[int]
    path: Optional[str]
    text: str


def _chain(error: BaseException):
    """``error`` and the exceptions it wraps (``__cause__``, ``__context__``, exception
    arguments, exception groups), each once."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (e.__cause__, e.__context__, *getattr(e, "exceptions", ()), *e.args)
                 if isinstance(x, BaseException)]


def cause_of(error: BaseException) -> Cause:
    """The errno and file of a failed write, read from the exception or its text."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno:
            return Cause(e.errno, e.filename, _first_line(e))
    for e in _chain(error):
        text = str(e)
        code = _OS_CODE.search(text)
        if code:
            found = _FILE.search(text)
            return Cause(int(code.group(1) or code.group(2)), found.group(1) if found else None,
                         _first_line(e))
    return Cause(None, None, _first_line(error))


def is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` can only come from a write (no space, quota, size limit, read-only)."""
    return cause_of(error).errno in WRITE_ERRNOS


def bucket_refusal(error: BaseException, workdir: str) -> Optional[Cause]:
    """Why a bucket refused a write of the run in ``workdir`` (HTTP 403: gcsfs raises
    ``OSError("Forbidden: ...")``, TensorFlow ``PermissionDeniedError``, TensorStore a
    ``PERMISSION_DENIED`` status), as a permission failure; None for anything else or a local
    workdir."""
    if not paths.is_url(workdir):
        return None
    for e in _chain(error):
        text = str(e)
        if (isinstance(e, OSError) and text.startswith("Forbidden:")) or \
                type(e).__name__ == "PermissionDeniedError" or "PERMISSION_DENIED" in text:
            return Cause(errno.EACCES, None, _first_line(e))
    return None


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:400]}"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def free_space(path: str) -> str:
    """``"2.1 GiB free of 50.0 GiB (and 1,204 free inodes) on the file system of PATH"``, or
    why it cannot be read; for a bucket, that it has no free space of its own."""
    if paths.is_url(path):
        return (f"{path} is in a bucket, which has no free space of its own to report (its "
                "project's quota and the bucket's permissions decide what may be written)")
    where = os.path.abspath(path)
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        usage = shutil.disk_usage(where)
        inodes = os.statvfs(where).f_favail
    except OSError as error:
        return f"the free space of {where} cannot be read ({error.strerror})"
    return (f"{_size(usage.free)} free of {_size(usage.total)} (and {inodes:,} free inodes) on "
            f"the file system of {where}; a quota may allow less")


def _size_limit() -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return "none is set here" if soft == resource.RLIM_INFINITY else f"{soft:,} bytes here"


class WriteFailed(RuntimeError):
    """A write of the run failed; the run stopped. ``kept_step``: the newest complete
    checkpoint (None: none yet), set once the run's pending saves have ended."""

    def __init__(self, what: str, path: str, cause: Cause, step: Optional[int] = None):
        self.what, self.path, self.cause, self.step = what, cause.path or path, cause, step
        self.where = path  # the folder whose free space is reported
        self.kept_step: Optional[int] = None
        self.checkpoints: Optional[str] = None
        super().__init__(what)

    def keeping(self, workdir: str) -> "WriteFailed":
        """This failure, naming ``workdir``'s newest complete checkpoint as kept (call it once
        the run's pending saves have ended)."""
        self.kept_step = workdir_lib.latest_step(workdir)
        self.checkpoints = workdir_lib.checkpoint_dir(workdir)
        return self

    def __str__(self) -> str:
        code = self.cause.errno
        reason = (f"{os.strerror(code)} ({errno.errorcode.get(code, code)})" if code
                  else self.cause.text)
        advice = _ADVICE.get(code, "Make the workdir writable again").format(limit=_size_limit())
        at = f" at step {self.step}" if self.step is not None else ""
        if self.kept_step is not None:
            kept = (f"The newest complete checkpoint, step {self.kept_step} (in {self.checkpoints}), "
                    "is intact; once this is fixed, rerun the same command to resume from it.")
        else:
            kept = "No checkpoint was complete yet; once this is fixed, rerun the same command."
        return (f"Writing {self.what} failed{at}: {reason}, writing {self.path}. The run stopped. "
                f"{advice}. Now {free_space(self.where)}. {kept} (--verbosity=1 shows the "
                "traceback.)")
