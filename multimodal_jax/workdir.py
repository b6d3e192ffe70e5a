"""Where a run keeps its files, and what may be asked of a workdir without opening them.

    WORKDIR/checkpoints/<step>/   Orbax steps (``runtime/checkpoint.py``)
    WORKDIR/config.json           the resolved config the run trains with (``runtime/run_record.py``)
    WORKDIR/commands.jsonl        the command line of each start of training
    WORKDIR/tokenizer.model       the SentencePiece model trained for the run, if any
    WORKDIR/clip_bpe/             the CLIP BPE vocabulary (vocab.json, merges.txt) trained for it, if any
    WORKDIR/run_files.json        fingerprints of the run files a resume reads (``run_files.py``)
    WORKDIR/lock.json             who trains in the workdir now (``runtime/workdir_lock.py``)
    WORKDIR/metrics.jsonl         one JSON line per logged step
    WORKDIR/tensorboard/          event files
    WORKDIR/pictures/             PNG figures of evaluations
    WORKDIR/<name>/               a prerequisite run trained for this one

A workdir is a local folder or a bucket (``gs://bucket/run``): every path goes through
``paths.py``. A finished checkpoint is a step folder named by its number: locally Orbax writes
each save under a temporary name and renames it when complete; in a bucket (no atomic rename)
it writes the step folder in place and marks it finished with ``commit_success.txt`` last, so
there a numbered folder without that file is a save in flight or cut short. Damaged steps are
renamed ``<step>.damaged``. Neither counts.
"""

import os
import tempfile

from multimodal_jax import paths

CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer.model"
CLIP_BPE = "clip_bpe"
CONFIG_RECORD = "config.json"
COMMANDS = "commands.jsonl"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
PICTURES = "pictures"
COMMIT_SUCCESS = "commit_success.txt"  # Orbax's mark of a finished step where it cannot rename


def checkpoint_dir(workdir: str) -> str:
    """The folder of ``workdir``'s checkpoints (absolute: Orbax requires it)."""
    return os.path.join(paths.absolute(workdir), CHECKPOINTS)


def is_finished_step(step_dir) -> bool:
    """Whether a numbered step folder holds a complete save: always locally (Orbax renamed it
    into place), only with ``commit_success.txt`` in a bucket (written last)."""
    return not paths.is_gcs(step_dir) or (paths.as_path(step_dir) / COMMIT_SUCCESS).exists()


def saved_steps(workdir: str) -> list[int]:
    """The finished checkpoint steps of ``workdir``, oldest first (none: ``[]``)."""
    directory = checkpoint_dir(workdir)
    if not paths.is_url(directory):
        names = os.listdir(directory) if os.path.isdir(directory) else []
        return sorted(int(name) for name in names if name.isdigit())
    folder = paths.as_path(directory)
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return sorted(int(name) for name in names
                  if name.isdigit() and is_finished_step(f"{directory}/{name}"))


def latest_step(workdir: str) -> int | None:
    """The newest finished checkpoint step of ``workdir``, or None when it has none."""
    return max(saved_steps(workdir), default=None)


def picture_path(workdir: str, name: str) -> str:
    """``WORKDIR/pictures/<name>.png``, its folder made."""
    directory = os.path.join(workdir, PICTURES)
    paths.as_path(directory).mkdir(parents=True, exist_ok=True)
    return os.path.join(directory, f"{name}.png")


def check_writable(workdir: str) -> None:
    """``ValueError`` unless ``workdir`` is a folder, or can become one, that this process can
    write (probed with a nameless temporary file: permission bits alone do not tell, e.g. for
    root); a bucket is probed with a tiny object written and deleted."""
    if not workdir:
        raise ValueError("The workdir is empty: pass --workdir DIR.")
    if paths.is_url(workdir):
        if not paths.is_gcs(workdir):
            raise ValueError(f"The workdir {workdir!r} is a URL of a kind this package does not "
                             "write to: give a local path or a Cloud Storage bucket (gs://BUCKET/DIR).")
        paths.probe_writable(workdir)
        return
    parent = os.path.abspath(workdir)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"The workdir {workdir!r} cannot be a folder: {parent!r} is a file. "
                         "Choose another path.")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise ValueError(f"The workdir {workdir!r} cannot be written (creating a file in "
                         f"{parent!r} fails: {error.strerror}): choose another.") from None
