"""Damaged shards of a prepared dataset (``data/tfrecord_shards.py``): a missing or cut-short
shard is named before anything heavy runs, bytes changed in place are named when TensorFlow
meets them, each with how to rebuild the dataset; an intact dataset passes for a ``stat`` per
shard."""

import glob
import os
import shutil

import pytest

from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import tfrecord_shards
from tests import tiny


@pytest.fixture
def data_copy(shapes_data_dir, tmp_path):
    """A copy of the tiny dataset's data dir, to damage; ``(config.data, shard path of split)``."""
    shutil.copytree(shapes_data_dir, tmp_path / "tfds")
    data = tiny.tiny_shapes_config(str(tmp_path / "tfds")).data

    def shard(split):
        return glob.glob(str(tmp_path / "tfds" / "**" / f"*-{split}.tfrecord-*"), recursive=True)[0]

    return data, shard


def test_an_intact_dataset_passes_and_its_shards_walk(data_copy):
    data, shard = data_copy
    datasets.check_config(data)
    assert tfrecord_shards.walk(shard("train")) == (512, None)  # every record's header checksum


@pytest.mark.parametrize("damage", ["truncate", "delete", "append"])
def test_a_missing_or_cut_short_shard_is_named_before_the_run(data_copy, damage):
    data, shard = data_copy
    path = shard("train")
    if damage == "truncate":
        os.truncate(path, os.path.getsize(path) * 2 // 3)
    elif damage == "delete":
        os.remove(path)
    else:
        with open(path, "ab") as f:
            f.write(b"\0" * 20)
    with pytest.raises(tfrecord_shards.DamagedShard) as error:
        datasets.check_config(data)
    message = str(error.value)
    assert message.startswith(f"The train shard {path} of dataset 'captioned_shapes/tiny' is damaged: ")
    assert {"truncate": "it is cut short", "delete": "the file is missing",
            "append": "record 512"}[damage] in message
    assert "Delete " in message and "(this version of the built-in dataset) and rerun" in message


def test_changed_bytes_are_named_when_read(data_copy):
    data, shard = data_copy
    path = shard("test")
    with open(path, "r+b") as f:  # inside a record's data: sizes and headers stay right
        f.seek(os.path.getsize(path) // 2)
        block = f.read(8)
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0xFF for b in block))
    datasets.check_config(data)  # sizes add up: nothing to see before reading
    with pytest.raises(tfrecord_shards.DamagedShard, match=f"The test shard {path} .* is damaged: corrupted record"):
        for _ in pipeline.make_eval_iterator(data, "test", None, 64):
            pass


def test_a_mixtures_shards_are_checked_and_named_as_its_datasets(data_copy):
    """A mixture's datasets are read through their own configs: a damaged train shard is named
    under the mixture's name for it, before the run when cut short, when read when changed."""
    data, shard = data_copy
    data.mixture = (("captioned_shapes/tiny:1.0.0", 1.0),)  # the same files, as a mixture's
    path, size = shard("train"), os.path.getsize(shard("train"))
    with open(path, "r+b") as f:  # inside a record's data: sizes and headers stay right
        f.seek(size // 2)
        block = f.read(8)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in block))
    datasets.check_config(data)
    named = f"The train shard {path} of dataset 'captioned_shapes/tiny:1.0.0' is damaged: "
    with pytest.raises(tfrecord_shards.DamagedShard, match=f"{named}corrupted record"):
        for _, _ in zip(range(100), pipeline.make_train_iterator(data, None, 64, seed=0)):
            pass
    os.truncate(path, size * 2 // 3)
    with pytest.raises(tfrecord_shards.DamagedShard, match=f"{named}.*it is cut short"):
        datasets.check_config(data)
