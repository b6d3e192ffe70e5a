"""Where a run keeps its files, and what may be asked of a workdir without opening them.

    WORKDIR/checkpoints/<step>/   Orbax steps (``runtime/checkpoint.py``)
    WORKDIR/config.json           the resolved config the run trains with (``runtime/run_record.py``)
    WORKDIR/commands.jsonl        the command line of each start of training
    WORKDIR/tokenizer.model       the SentencePiece model trained for the run, if any
    WORKDIR/clip_bpe/             the CLIP BPE vocabulary (vocab.json, merges.txt) trained for it, if any
    WORKDIR/metrics.jsonl         one JSON line per logged step
    WORKDIR/tensorboard/          event files
    WORKDIR/pictures/             PNG figures of evaluations
    WORKDIR/<name>/               a prerequisite run trained for this one

A finished checkpoint is a step folder named by its number: Orbax writes each save under a
temporary name and renames it when complete, and damaged steps are renamed
``<step>.damaged``, so neither counts.
"""

import os
import tempfile

CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer.model"
CLIP_BPE = "clip_bpe"
CONFIG_RECORD = "config.json"
COMMANDS = "commands.jsonl"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
PICTURES = "pictures"


def checkpoint_dir(workdir: str) -> str:
    """The folder of ``workdir``'s checkpoints (absolute: Orbax requires it)."""
    return os.path.join(os.path.abspath(workdir), CHECKPOINTS)


def saved_steps(workdir: str) -> list[int]:
    """The finished checkpoint steps of ``workdir``, oldest first (none: ``[]``)."""
    directory = checkpoint_dir(workdir)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(name) for name in names if name.isdigit())


def latest_step(workdir: str) -> int | None:
    """The newest finished checkpoint step of ``workdir``, or None when it has none."""
    return max(saved_steps(workdir), default=None)


def picture_path(workdir: str, name: str) -> str:
    """``WORKDIR/pictures/<name>.png``, its folder made."""
    directory = os.path.join(workdir, PICTURES)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{name}.png")


def check_writable(workdir: str) -> None:
    """``ValueError`` unless ``workdir`` is a folder, or can become one, that this process can
    write (probed with a nameless temporary file: permission bits alone do not tell, e.g. for
    root)."""
    if not workdir:
        raise ValueError("The workdir is empty: pass --workdir DIR.")
    if "://" in workdir:
        raise ValueError(
            f"The workdir {workdir!r} is a URL; checkpoints, metrics and pictures are written "
            "through the file system, so give a path on a file system every host mounts (e.g. "
            "a GCS bucket through gcsfuse at /mnt/shared, or NFS).")
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
