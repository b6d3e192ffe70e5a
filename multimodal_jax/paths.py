"""One way to name the files a run reads and writes, on a local file system or in a bucket
(``gs://bucket/...``, as TPU-pod jobs keep their workdirs and data dirs).

Every path goes through ``etils.epath`` (as Orbax and TFDS do): ``epath.Path("gs://b/x")``
speaks to the bucket through ``tf.io.gfile`` when TensorFlow is installed, or through
``gcsfs`` when ``EPATH_USE_TF=false``. Local paths keep the exact behaviour they had (the same
calls, the same bytes); what differs on a bucket is said here, once:

- a bucket has objects, not files: an object is written whole or not at all, so a write needs no
  temporary name and rename (a rename is a copy and a delete there, slow and not atomic);
- an object cannot be appended to: appending reads the object and writes it back whole (what
  ``tf.io.gfile`` does itself; ``gcsfs`` would silently overwrite);
- nothing about a bucket is known until it is asked: ``probe_writable`` writes and deletes a tiny
  object, so a bucket that does not exist or cannot be written is an error at start-up.
"""

import os
import socket

from etils import epath

URL_MARK = "://"


def is_url(path) -> bool:
    """Whether ``path`` names an object store (``gs://...``), not the local file system."""
    return URL_MARK in os.fspath(path)


def is_gcs(path) -> bool:
    """Whether ``path`` is in a Google Cloud Storage bucket (where Orbax marks a finished
    checkpoint with ``commit_success.txt`` instead of renaming its folder)."""
    return os.fspath(path).startswith("gs://")


def absolute(path) -> str:
    """``path`` made absolute (local) or as given (a URL, without a trailing slash)."""
    text = os.fspath(path)
    return text.rstrip("/") if is_url(text) else os.path.abspath(text)


def as_path(path) -> epath.Path:
    """``path`` (a string, local or a URL) as an ``epath.Path``."""
    return epath.Path(path)


def write_whole(path, data: bytes) -> None:
    """Writes ``data`` as the whole content of ``path``, never leaving it half written: locally
    through a temporary file renamed into place; in a bucket with one upload (an object is
    replaced whole). A write that fails names its file."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_url(path):
        path.write_bytes(data)
        return
    temporary = path.parent / f"{path.name}.tmp-{os.getpid()}"
    try:
        temporary.write_bytes(data)
    except OSError as error:  # a failed write names no file: name it (a full disk's error says where)
        if error.filename is not None or not error.errno:
            raise
        raise OSError(error.errno, error.strerror, os.fspath(temporary)) from error
    temporary.replace(path)


def append_text(path, text: str) -> None:
    """Appends ``text`` to ``path`` (made if missing). In a bucket the object is read and
    written back whole: objects cannot be appended to. One writer per file (process 0)."""
    path = as_path(path)
    if not is_url(path):
        with path.open("a") as f:
            f.write(text)
        return
    before = path.read_text() if path.exists() else ""
    path.write_text(before + text)


def files_under(folder) -> list[epath.Path]:
    """Every file below ``folder``, walked folder by folder (epath refuses ``**`` in buckets)."""
    found = []
    for item in as_path(folder).iterdir():
        found += files_under(item) if item.is_dir() else [item]
    return found


def copy_local_tree(source: str, target) -> list[str]:
    """Copies every file below the local folder ``source`` to the same relative name under
    ``target`` (local or a URL), each written whole; the relative names, sorted. For writers that
    need a local path (safetensors): they write into a temporary folder, this puts it in place."""
    names = sorted(os.path.relpath(os.path.join(root, name), source)
                   for root, _, files in os.walk(source) for name in files)
    for name in names:
        with open(os.path.join(source, name), "rb") as f:
            write_whole(as_path(target) / name, f.read())
    return names


def move_tree(source, target) -> None:
    """Renames the folder ``source`` to ``target``: locally one rename; in a bucket (folders
    are name prefixes) each object copied, then the source deleted."""
    if not is_url(source):
        os.rename(source, target)
        return
    source, target = as_path(source), as_path(target)
    for item in files_under(source):
        write_whole(target / item.relative_to(source), item.read_bytes())
    source.rmtree()


def probe_writable(folder: str, what: str = "workdir", flag: str = "--workdir") -> None:
    """``ValueError`` naming the bucket unless a tiny object can be written into and deleted
    from ``folder`` (a URL; ``what`` it is, given by the flag ``flag``): a bucket that does not
    exist, is out of reach or refuses this machine's credentials is found before anything heavy
    runs."""
    probe = as_path(folder) / f".write-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except Exception as error:  # noqa: BLE001 - every client reports this its own way
        bucket = os.fspath(folder).split(URL_MARK, 1)[1].split("/", 1)[0]
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        raise ValueError(
            f"The {what} {folder!r} cannot be written: writing a test object into bucket "
            f"{bucket!r} failed ({reason}). Check that the bucket exists, that this machine can "
            "reach it and that its credentials may write there (gcloud storage ls "
            f"gs://{bucket}/), or choose another {flag}.") from None
