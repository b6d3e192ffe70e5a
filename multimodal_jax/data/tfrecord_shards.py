"""Damaged TFRecord shards of a prepared TFDS dataset, named, with how to rebuild them, instead
of a TensorFlow traceback that names neither.

Before a run (``check_splits``, from the data block's checks): every shard of the splits read
is present, and together their sizes are what the dataset's info promises (each record is its
serialised example plus 16 bytes of framing). Only when they are not is each shard walked
record by record, by its framing, to name the one that is cut short or has trailing bytes;
this costs a ``stat`` per shard otherwise. While reading (``damaged_error``): bytes changed in
place fail TensorFlow's CRC check as a ``DataLossError`` without a file name; the shards are
then read one by one until the damaged one is found.
"""

import re
import struct
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

FRAMING = 16  # per record: its length (8 bytes), the length's CRC (4), the data's CRC (4)
_OFFSET = re.compile(r"record at (\d+)")


class DamagedShard(ValueError):
    """A shard of a prepared dataset is missing, cut short or corrupt; the message names it and
    how to rebuild it. ``saved_step``: the step the run saved before stopping, if any."""

    def __init__(self, message: str):
        super().__init__(message)
        self.saved_step: Optional[int] = None

    def __str__(self) -> str:
        message = super().__str__()
        if self.saved_step is None:
            return message
        return (f"{message} The run stopped; its last finished step, {self.saved_step}, is "
                "checkpointed: once the shard is rebuilt, rerun the same command to resume from it.")


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated and offset."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def walk(path) -> tuple[int, Optional[str]]:
    """``(records, problem)`` of a TFRecord file read by its framing alone (lengths and their
    checksums, not the data): ``problem`` says where it is cut short or broken, else None."""
    path = epath.Path(path)
    size, count, position = path.stat().length, 0, 0
    with path.open("rb") as f:
        while position < size:
            header = f.read(12)
            if len(header) < 12:
                return count, f"it ends inside the header of record {count} (byte {position} of {size})"
            length, checksum = struct.unpack("<QI", header)
            if _masked_crc32c(header[:8]) != checksum:
                return count, f"the header of record {count} (byte {position}) is corrupt"
            position += 12 + length + 4
            if position > size:
                return count, (f"record {count} needs {position:,} bytes but the file has "
                               f"{size:,}: it is cut short")
            f.seek(position)
            count += 1
    return count, None


def _base_splits(split: str) -> list[str]:
    """``"train[:90%]+test"`` -> ``["train", "test"]``."""
    return [part.split("[")[0].strip() for part in split.split("+")]


def _shards(builder: tfds.core.DatasetBuilder, split: str) -> list[tuple[str, str, int]]:
    """``(split, path, records)`` of every shard of the splits ``split`` reads."""
    return [(base, str(path), length) for base in _base_splits(split)
            for path, length in zip(builder.info.splits[base].filepaths,
                                    builder.info.splits[base].shard_lengths)]


def _error(split: str, path: str, problem: str, name: str, rebuild: str) -> DamagedShard:
    return DamagedShard(f"The {split} shard {path} of dataset {name!r} is damaged: {problem}. "
                        f"{rebuild}")


def check_splits(builder: tfds.core.DatasetBuilder, splits, name: str, rebuild: str) -> None:
    """``DamagedShard`` when a shard of ``splits`` is missing, or their sizes differ from the
    dataset's info and a shard is cut short (``rebuild``: how to make it again)."""
    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return
    for split in dict.fromkeys(splits):
        shards = _shards(builder, split)
        for base, path, _ in shards:
            if not epath.Path(path).exists():
                raise _error(base, path, "the file is missing", name, rebuild)
        for base in _base_splits(split):
            info = builder.info.splits[base]
            total = sum(epath.Path(p).stat().length for b, p, _ in shards if b == base)
            if not info.num_bytes or total == info.num_bytes + FRAMING * info.num_examples:
                continue
            for b, path, expected in shards:
                if b != base:
                    continue
                count, problem = walk(path)
                if problem is None and count != expected:
                    problem = f"it holds {count} records where the dataset's info says {expected}"
                if problem:
                    raise _error(base, path, problem, name, rebuild)


def _reads_whole(path: str) -> Optional[str]:
    """Why TensorFlow cannot read every record of ``path`` (CRCs checked), or None."""
    try:
        tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1)
    except (tf.errors.DataLossError, tf.errors.NotFoundError) as error:
        return error.message.split("}}")[-1].split("[Op:")[0].strip() or type(error).__name__
    return None


def damaged_error(builder: tfds.core.DatasetBuilder, splits, name: str, rebuild: str,
                  error: tf.errors.OpError) -> Exception:
    """The ``DamagedShard`` behind a ``DataLossError`` / ``NotFoundError`` met while reading
    ``splits``: the first shard whose framing or data does not read (those too short to hold
    the failing offset are skipped); the original error when none is found."""
    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return error
    match = _OFFSET.search(error.message or "")
    offset = int(match.group(1)) if match else -1
    for split in dict.fromkeys(splits):
        for base, path, _ in _shards(builder, split):
            if not epath.Path(path).exists():
                return _error(base, path, "the file is missing", name, rebuild)
            if epath.Path(path).stat().length <= offset:
                continue
            problem = walk(path)[1] or _reads_whole(path)
            if problem:
                return _error(base, path, problem, name, rebuild)
    return error
