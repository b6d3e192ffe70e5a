"""Fingerprints of the files a run's resume depends on, recorded when each is written and
checked when it is read, so that a damaged or replaced file is a clear error instead of a run
that silently continues with something else.

``WORKDIR/run_files.json`` maps a file's name (relative to the workdir) to the SHA-256 and size
of its bytes. A file joins with one call where it is written, and one where it is read:

    run_files.write(workdir, "tokenizer.model", data)            # records, then writes
    data = run_files.read(workdir, "tokenizer.model", advice)    # RunFileError if it changed
    run_files.adopt(workdir, "tokenizer.model", data)            # (a file not recorded yet)

Today: the trained tokenizer (``tokenizer.model``, or ``clip_bpe/vocab.json`` and
``clip_bpe/merges.txt``; ``data/vocab.py``) and the config record (``config.json``;
``runtime/run_record.py``, which the run itself rewrites at each start: ``replaces=True``).

A file is bound to the run's checkpoints: while the workdir holds none, a file that changed is
simply recorded again (nothing was trained with the old one); once it holds some, a changed
file is an error whose message says what was recorded, what is there now and ``advice`` (how
to restore it). Checkpoints carry their own fingerprints (``runtime/checkpoint.py``).

The record is written before the file (each whole: locally a temporary file, then a rename; in
a bucket one upload, ``paths.write_whole``), so a process killed in between leaves a record
without its file, never a file without its record; a file being replaced is recorded with both
fingerprints until the new one is in place. Paths go through ``paths.py`` (``etils.epath``)
and work on a bucket as well.
"""

import datetime
import hashlib
import json
import logging
from typing import Optional

from etils import epath

from multimodal_jax import paths
from multimodal_jax import workdir as workdir_lib

log = logging.getLogger(__name__)
MANIFEST = "run_files.json"
FORMAT = 1


class RunFileError(ValueError):
    """A file of the run differs from the one recorded when it was written (or the record of
    fingerprints cannot be read); the message says how to restore it."""


def fingerprint(data: bytes) -> dict:
    """``{"sha256": hex digest, "bytes": size}`` of ``data``."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _manifest_path(workdir) -> epath.Path:
    return epath.Path(workdir) / MANIFEST


def _entries(workdir) -> dict:
    """Every recorded fingerprint of ``workdir`` (none: ``{}``)."""
    path = _manifest_path(workdir)
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())["files"]
        if not isinstance(entries, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as error:
        raise RunFileError(
            f"{path} (the fingerprints of the run's files) cannot be read ({error}), so the files "
            "a resume depends on cannot be checked. Restore it from a backup of the workdir; or, "
            "only if you trust the files as they are, delete it: they are then recorded again as "
            "they are.") from None
    return entries


def recorded(workdir, name: str) -> Optional[dict]:
    """The fingerprint recorded for ``name`` in ``workdir``, or None."""
    return _entries(workdir).get(name)


def record(workdir, name: str, data: bytes, previous: Optional[dict] = None) -> None:
    """Records ``data`` as the bytes of ``workdir/name`` (the file itself is not written);
    ``previous``: a fingerprint the file may still have, while it is being replaced."""
    entries = _entries(workdir)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entries[name] = {**fingerprint(data), "recorded": stamp}
    if previous is not None:
        entries[name]["previous"] = {"sha256": previous["sha256"], "bytes": previous["bytes"]}
    text = json.dumps({"format": FORMAT, "files": entries}, indent=1, sort_keys=True) + "\n"
    paths.write_whole(_manifest_path(workdir), text.encode())


def write(workdir, name: str, data: bytes, advice: str = "", replaces: bool = False) -> None:
    """Writes ``data`` to ``workdir/name`` with its fingerprint recorded first (call it on one
    process). A file recorded with other bytes while the workdir has checkpoints is a
    ``RunFileError`` (with ``advice``): the checkpoints were trained with the recorded one.
    ``replaces``: the run itself replaces the recorded file (it was checked when read); the
    record accepts the old bytes too until the new ones are in place."""
    if not replaces:
        _check(workdir, name, data, advice)
        record(workdir, name, data)
        paths.write_whole(epath.Path(workdir) / name, data)
        return
    before = recorded(workdir, name)
    record(workdir, name, data, previous=before)
    paths.write_whole(epath.Path(workdir) / name, data)
    if before is not None:
        record(workdir, name, data)


def read(workdir, name: str, advice: str) -> bytes:
    """The bytes of ``workdir/name``, checked against their record: ``RunFileError`` (with
    ``advice``, how to restore the file) when they differ and the workdir has checkpoints."""
    data = (epath.Path(workdir) / name).read_bytes()
    _check(workdir, name, data, advice)
    return data


def adopt(workdir, name: str, data: bytes) -> None:
    """Records ``data`` (read and checked by ``read``) when ``name`` has no record yet (a
    workdir from before fingerprints) or changed before any checkpoint was trained with it.
    Call it on the process that writes records, once the bytes proved usable."""
    expected = recorded(workdir, name)
    if expected is None or expected["sha256"] != fingerprint(data)["sha256"]:
        log.info("Recorded the fingerprint of %s.", epath.Path(workdir) / name)
        record(workdir, name, data)


def _check(workdir, name: str, data: bytes, advice: str) -> Optional[dict]:
    """The record of ``name``; ``RunFileError`` when ``data`` differs from it and the workdir
    has checkpoints trained with the recorded bytes."""
    expected = recorded(workdir, name)
    actual = fingerprint(data)
    if expected is None or actual["sha256"] in (expected["sha256"],
                                                expected.get("previous", {}).get("sha256")):
        return expected
    steps = workdir_lib.saved_steps(str(workdir))
    if not steps:
        return expected
    raise RunFileError(
        f"{epath.Path(workdir) / name} differs from the one the checkpoints in "
        f"{workdir_lib.checkpoint_dir(str(workdir))} (steps {steps[0]}..{steps[-1]}) were trained "
        f"with: {_describe(expected)} was recorded when it was written ({expected.get('recorded', '')}); "
        f"the file now has {_describe(actual)}. It was damaged or replaced, and the run would not "
        f"continue as it was trained. {advice}".strip())


def _describe(print_: dict) -> str:
    return f"SHA-256 {print_['sha256'][:16]}... of {print_['bytes']:,} bytes"
