"""``train.prepare``: TFDS datasets from a user's files in each of the three layouts (a captions
file, class folders, webdataset shards), with bad inputs among a few generated images: every one
left out is listed in the report, paths escaping the root and tar links are refused, images are
stored as given unless they must be re-encoded, and the splits are deterministic. The prepared
datasets then stream through the training pipeline."""

import io
import json
import logging
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import prepare
from multimodal_jax.data import tokenizers
from multimodal_jax.data import user_files
from multimodal_jax.data import vocab
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import run_record
from tests import env as test_env
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = tokenizers.ByteTokenizer(max_len=40)


def _image(seed: int, size=(12, 16), mode="RGB", fmt="PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def _write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _problems(report) -> dict:
    return {p["item"]: p["problem"] for p in report["problems"]}


def _read(data_dir, name, split, **kw):
    cfg = datasets.default_data_config(name=name, data_dir=data_dir, image_size=8, max_len=40,
                                       text_key="caption", **kw)
    return [ex for batch in pipeline.make_eval_iterator(cfg, split, TOKENIZER, 4, process_index=0,
                                                         process_count=1)
            for ex in [dict(zip(batch, values)) for values in zip(*batch.values())] if ex["mask"]]


def test_image_folder_with_bad_files(tmp_path):
    folder = tmp_path / "photos"
    for i in range(5):
        _write(f"{folder}/red_circle/{i}.png", _image(i, size=(10 + i, 30)))
        _write(f"{folder}/blue_square/sub/{i}.jpg", _image(10 + i, mode="L", fmt="JPEG"))
    _write(f"{folder}/blue_square/odd.tif", _image(20, fmt="TIFF"))  # re-encoded as PNG
    _write(f"{folder}/red_circle/broken.png", b"\x89PNG not really")
    _write(f"{folder}/red_circle/truncated.jpg", _image(21, size=(40, 40), fmt="JPEG")[:300])
    _write(f"{folder}/.DS_Store", b"x")
    _write(f"{tmp_path}/secret.png", _image(22))
    os.symlink(f"{tmp_path}/secret.png", f"{folder}/red_circle/link.png")
    os.makedirs(f"{folder}/empty_class")
    listing = user_files.image_folder(str(folder), ["a photo of a {}.", "a {}."])
    data_dir = str(tmp_path / "tfds")
    report = prepare.prepare("photos", data_dir, listing, "test", test_fraction=0.4)
    assert report["classes"] == ["blue_square", "red_circle"]
    assert report["examples"] == {"train": 6, "test": 5}  # 2 + 2 test of 5 readable, 6 blue
    problems = _problems(report)
    assert problems["red_circle/broken.png"].startswith("unreadable image: not an image")
    assert problems["red_circle/truncated.jpg"].startswith("unreadable image")
    assert "link leading outside" in problems["red_circle/link.png"]
    assert "class folder without files" in problems["empty_class/"]
    assert report["ignored"] == {"hidden files": 1}
    assert [r["item"] for r in report["reencoded"]] == ["blue_square/odd.tif"]
    with open(report["report"]) as f:
        assert json.load(f)["problem_count"] == len(problems) == 4
    examples = _read(data_dir, "photos", "train", label_key="label") + _read(
        data_dir, "photos", "test", label_key="label")
    names = tfds.builder("photos", data_dir=data_dir).info.features["label"].names
    for ex in examples:  # the first caption of each, its template filled with the class
        assert TOKENIZER.decode(ex["tokens"]) == f"a photo of a {names[ex['label']].replace('_', ' ')}."
    stored = next(iter(tfds.builder("photos", data_dir=data_dir).as_dataset(
        split="train+test", decoders={"image": tfds.decode.SkipDecoding()}).filter(
        lambda ex: ex["image/filename"] == "red_circle/3.png")))
    assert stored["image"].numpy() == _image(3, size=(13, 30))  # kept byte for byte
    with pytest.raises(ValueError, match="exists: dataset 'photos' is prepared already"):
        prepare.prepare("photos", data_dir, listing, "test")
    again = prepare.prepare("photos", data_dir, listing, "test", test_fraction=0.4, overwrite=True)
    assert again["examples"] == report["examples"]


def test_captions_file_csv_and_jsonl(tmp_path):
    images = tmp_path / "images"
    for i in range(6):
        _write(f"{images}/{i}.png", _image(i, size=(8 + i, 9)))
    _write(f"{tmp_path}/outside.png", _image(9))
    rows = ["image,caption", "0.png,a first image", "1.png,  ", "../outside.png,escapes the root",
            f"{tmp_path}/outside.png,absolute path outside", "missing.png,no such file",
            "2.png,\"a caption, with a comma\"", "3.png,one of two", "3.png,two of two",
            "4.png,four", "5.png,five"]
    (images / "captions.csv").write_text("\n".join(rows) + "\n")
    listing = user_files.captions_file(str(images / "captions.csv"))
    report = prepare.prepare("from_csv", str(tmp_path / "tfds"), listing, "csv", test_fraction=0)
    assert report["examples"] == {"train": 5} and report["caption_lists"] and not report["classes"]
    problems = {item.split(" ")[0]: p for item, p in _problems(report).items()}
    assert problems == {"captions.csv:3": "empty caption",
                        "captions.csv:4": f"path escapes the images root {images}; refused",
                        "captions.csv:5": f"path escapes the images root {images}; refused",
                        "captions.csv:6": "image file not found"}
    texts = {TOKENIZER.decode(ex["tokens"]) for ex in _read(str(tmp_path / "tfds"), "from_csv", "train")}
    assert texts == {"a first image", "a caption, with a comma", "one of two", "four", "five"}
    # JSONL, labels, and paths relative to --images_root.
    lines = [json.dumps({"image": f"images/{i}.png", "caption": [f"cap {i}"], "label": "ab"[i % 2]})
             for i in range(6)] + ["{not json", json.dumps({"image": "images/0.png", "caption": "x",
                                                            "label": "b"})]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    listing = user_files.captions_file(str(tmp_path / "rows.jsonl"), images_root=str(tmp_path))
    report = prepare.prepare("from_jsonl", str(tmp_path / "tfds"), listing, "jsonl", test_fraction=0.34)
    assert report["classes"] == ["a", "b"] and report["examples"] == {"train": 4, "test": 2}
    assert set(_problems(report).values()) == {
        "not a JSON object: Expecting property name enclosed in double quotes",
        "label 'b' differs from 'a' given earlier for the same image; the first is kept"}
    keys = lambda splits: {k: sorted(c.key for c in v) for k, v in splits.items()}  # noqa: E731
    assert keys(prepare.assign_splits(listing.candidates, 0.34)) == keys(
        prepare.assign_splits(listing.candidates[::-1], 0.34))  # whatever the order of the rows


def _add(tar, name, data: bytes = b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = (len(data) if kind == tarfile.REGTYPE else 0), kind, link
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_webdataset_shards_are_read_in_memory(tmp_path):
    os.makedirs(tmp_path / "shards")
    with tarfile.open(tmp_path / "shards/part-000.tar", "w") as tar:
        for i in range(4):
            _add(tar, f"s/{i:04d}.jpg" if i % 2 else f"s/{i:04d}.png", _image(i, fmt="JPEG" if i % 2 else "PNG"))
            _add(tar, f"s/{i:04d}.txt", f"sample {i}".encode())
        _add(tar, "s/0100.png", _image(5))  # no caption
        _add(tar, "s/0101.txt", b"no image")
        _add(tar, "s/0102.png", _image(6))
        _add(tar, "s/0102.txt", b"   ")  # empty caption
        _add(tar, "s/0103.json", b"{}")  # ignored extension
        _add(tar, "../../escape.txt", b"a name that would escape")
        _add(tar, "../../escape.png", _image(7))
        _add(tar, "s/0104.png", kind=tarfile.SYMTYPE, link="/etc/passwd")
        _add(tar, "s/0104.txt", b"a link")
    with tarfile.open(tmp_path / "shards/part-001.tar.gz", "w:gz") as tar:
        _add(tar, "t/0000.png", _image(8))
        _add(tar, "t/0000.txt", b"from the second shard")
    (tmp_path / "shards/part-002.tar").write_bytes(b"not a tar file")
    listing = user_files.webdataset(str(tmp_path / "shards/part-{000..002}.tar*"))
    report = prepare.prepare("shards", str(tmp_path / "tfds"), listing, "wds", test_fraction=0.25)
    assert sum(report["examples"].values()) == 6 and report["examples"]["test"] == 2
    problems = _problems(report)
    assert problems["part-000.tar:s/0100"] == "image without a .txt caption"
    assert problems["part-000.tar:s/0101"] == "caption without an image"
    assert problems["part-000.tar:s/0102"] == "empty caption"
    assert "not a regular file" in problems["part-000.tar:s/0104.png"]
    assert "unreadable tar" in problems[str(tmp_path / "shards/part-002.tar")]
    assert report["ignored"] == {"members with extension .json": 1}
    assert not os.path.exists(tmp_path / "escape.txt") and not os.path.exists(tmp_path.parent / "escape.txt")
    texts = {TOKENIZER.decode(ex["tokens"]) for split in report["examples"]
             for ex in _read(str(tmp_path / "tfds"), "shards", split)}
    assert texts == {"sample 0", "sample 1", "sample 2", "sample 3", "a name that would escape",
                     "from the second shard"}


def test_bad_requests_are_refused(tmp_path):
    listing = user_files.Listing([], [])
    for name, message in [("My Data", "lower case letters"), ("cifar10", "name of a TFDS builder")]:
        with pytest.raises(ValueError, match=message):
            prepare.prepare(name, str(tmp_path), listing, "x")
    with pytest.raises(ValueError, match="No image of x can be used"):
        prepare.prepare("nothing", str(tmp_path), listing, "x")
    with pytest.raises(ValueError, match="header must name the columns 'image' and 'caption'"):
        (tmp_path / "bad.csv").write_text("path,text\na.png,b\n")
        user_files.captions_file(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        user_files.webdataset(str(tmp_path / "none-{0..3}.tar"))


@pytest.mark.slow
def test_command_line(tmp_path):
    for i in range(4):
        _write(f"{tmp_path}/folder/cat/{i}.png", _image(i))
    _write(f"{tmp_path}/folder/dog/bad.png", b"not an image")
    _write(f"{tmp_path}/folder/dog/0.png", _image(5))
    command = [sys.executable, "-m", "train.prepare", "--name", "pets", "--data_dir",
               str(tmp_path / "tfds"), "--image_folder", str(tmp_path / "folder"), "--strict"]
    result = subprocess.run(command, cwd=ROOT, env=test_env.with_devices(1), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "dog/bad.png: unreadable image" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["examples/train"] + summary["examples/test"] == 5 and summary["problems"] == 1
    assert "error: --strict: 1 inputs were left out" in result.stderr
    twice = subprocess.run(command[:-1] + ["--webdataset", "x.tar"], cwd=ROOT,
                           env=test_env.with_devices(1), capture_output=True, text=True, timeout=300)
    assert twice.returncode == 2 and "Give exactly one of --captions" in twice.stderr
    assert "Traceback" not in result.stderr + twice.stderr


@pytest.mark.slow
def test_prepared_dataset_trains_mixed_with_the_builtin_one(shapes_data_dir, tmp_path, caplog):
    """The whole path: files -> prepare -> a run whose train stream mixes them with the built-in
    dataset (its tokenizer trained on both), printing its progress lines (stderr is not a
    terminal under pytest), then evaluated from its workdir's record alone. The mixed stream's
    bitwise resume is tested in test_data_sources.py, the loop's in test_train_loop.py."""
    for i in range(24):
        _write(f"{tmp_path}/folder/{'red_square' if i % 2 else 'blue_square'}/{i}.png",
               _image(i, size=(20 + i, 28)))
    data_dir = str(tmp_path / "tfds")
    prepare.prepare("my_squares", data_dir, user_files.image_folder(
        str(tmp_path / "folder"), ["a snapshot of my {}."]), "folder", test_fraction=0.25)
    os.symlink(os.path.join(shapes_data_dir, "captioned_shapes"),  # one data dir holds both
               os.path.join(data_dir, "captioned_shapes"))
    config = tiny.tiny_shapes_config(data_dir)
    config.data.mixture = (("captioned_shapes/tiny", 3.0), ("my_squares", 1.0))
    config.total_steps = config.eval_every_steps = 4
    with caplog.at_level(logging.INFO, logger="multimodal_jax"):
        metrics = loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert metrics["step"] == 4 and 0.0 <= metrics["zeroshot/test/top1"] <= 1.0
    captions = vocab.training_captions(config.data, limit=400)
    mine = [c for c in captions if c.startswith("a snapshot of my ")]  # its 18 train examples
    assert len(captions) == 300 + 18 and len(mine) == 18  # 3/4 of 400 from the built-in one
    lines = [r.getMessage() for r in caplog.records if r.name == "multimodal_jax.runtime.progress"]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"]
    assert all(" steps/s, ETA " in line for line in lines)
    # The workdir's record keeps the mixture (JSON lists back as tuples, through the list
    # checks): evaluating with the recorded config alone gives the run's numbers.
    recorded = run_record.load(str(tmp_path / "run"))
    assert recorded.data.mixture == config.data.mixture
    evaluated = evaluate_checkpoint.evaluate_latest(recorded, str(tmp_path / "run"))
    assert evaluated["zeroshot/test/top1"] == metrics["zeroshot/test/top1"]
