"""The workdir lock in a bucket (``gs://bucket/run/lock.json``), where no file can be locked:
the lock object is created only if absent (``if_generation_match=0``, one atomic request to
Cloud Storage), so of two runs that start together exactly one creates it and the other is
refused, naming the holder (host, pid, start) from the object's content.

A lock left behind (the holder was killed with ``kill -9``, or its VM was lost) cannot be told
from a live one by a pid on another host, so it is refused with the command that removes it.
Only a lock naming this host, in a process that is gone (or from before this host's reboot),
is taken over, with a warning, by replacing exactly the object that was read
(``if_generation_match=<its generation>``: a third run that took it meanwhile wins).
Release deletes the object only while it is still the one this run wrote.
"""

import json
import logging
from typing import Optional

from multimodal_jax.runtime import holders

log = logging.getLogger(__name__)


def _client():
    """A Cloud Storage client (credentials from the environment; ``STORAGE_EMULATOR_HOST``
    points it at an emulator)."""
    from google.cloud import storage  # noqa: PLC0415 - only a bucket workdir needs the client

    return storage.Client()


def _split(url: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    bucket, _, name = url.removeprefix("gs://").partition("/")
    return bucket, name


class BucketLock:
    """``WORKDIR/lock.json`` in a bucket held by this process: ``acquire()`` or
    ``WorkdirLocked``; ``release()`` deletes it."""

    def __init__(self, workdir: str, lock_name: str):
        self.workdir = workdir.rstrip("/")
        self.path = f"{self.workdir}/{lock_name}"
        self._generation: Optional[int] = None

    def _blob(self):
        bucket, name = _split(self.path)
        return _client().bucket(bucket).blob(name)

    def read(self) -> tuple[dict, Optional[int]]:
        """The holder the lock object names and the object's generation (``({}, None)``: none)."""
        from google.api_core import exceptions  # noqa: PLC0415 - with the client

        blob = self._blob()
        try:
            text = blob.download_as_text()
        except exceptions.NotFound:
            return {}, None
        return holders.parse(text), blob.generation

    def acquire(self) -> None:
        """Creates the lock object, or takes over one this host can tell is left behind;
        ``WorkdirLocked`` when another run holds it."""
        from google.api_core import exceptions  # noqa: PLC0415 - with the client

        for _ in range(10):  # the holder may release it between our read and our create
            holder, generation = self.read()
            if holder and holders.is_alive(holder) is not False:
                raise self.held_error(holder)
            if holder:
                log.warning("Taking over the lock of %s left by %s, which is no longer running "
                            "(it was stopped without releasing it, e.g. by kill -9).",
                            self.workdir, holders.describe(holder))
            blob = self._blob()
            try:
                blob.upload_from_string(json.dumps(holders.this_process(), indent=1) + "\n",
                                        content_type="application/json",
                                        if_generation_match=generation or 0)
            except exceptions.PreconditionFailed:  # another run created or replaced it first
                continue
            self._generation = blob.generation
            return
        raise self.held_error(self.read()[0])

    def held_error(self, holder: dict, alive: Optional[bool] = None) -> holders.WorkdirLocked:
        """The error naming ``holder`` and how to remove a lock left behind (``alive``: as the
        local lock's, for ``hold``; unused here, where every holder is refused alike)."""
        del alive
        who = holders.describe(holder) if holder else "another process"
        return holders.WorkdirLocked(
            f"The workdir {self.workdir} is locked by a training run, {who}, through "
            f"{self.path}. Two runs in one workdir would write checkpoints of the same steps over "
            "each other. A lock in a bucket cannot tell a run on another host that was killed "
            "from one still training: if that run is no longer running, remove the lock "
            f"(gcloud storage rm {self.path}) and rerun; otherwise train in another --workdir. "
            "Evaluating (train.evaluate) needs no lock.")

    def names_this_process(self) -> bool:
        """Whether the lock object still names this process (the workdir was not deleted); a
        lock that cannot be read now (permission lost) counts as held: the failed write that
        follows says what went wrong, not a deletion that did not happen."""
        from google.api_core import exceptions  # noqa: PLC0415 - with the client

        try:
            holder, _ = self.read()
        except exceptions.Forbidden:
            return True
        return holders.is_this_process(holder)

    def release(self) -> None:
        """Deletes the lock object if it is still the one this run wrote."""
        from google.api_core import exceptions  # noqa: PLC0415 - with the client

        if self._generation is None:
            return
        try:
            self._blob().delete(if_generation_match=self._generation)
        except (exceptions.NotFound, exceptions.PreconditionFailed):
            pass  # deleted, or replaced by another run: not ours to remove
        self._generation = None
