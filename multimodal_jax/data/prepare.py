"""A TFDS dataset from a user's files (``python -m train.prepare``), written by TFDS's own
writer (``tfds.dataset_builders.store_as_tfds_dataset``) into ``DATA_DIR/NAME/1.0.0`` and then
read like any prepared dataset (``config.data.name=NAME``, ``config.data.data_dir=DATA_DIR``).

Features: ``image`` (the file's bytes, see ``stored_images.py``), ``caption`` (a string, or a
list of strings where some image has several), ``label`` (a ClassLabel, where the input names
classes) and ``image/filename`` (the example's key). Splits ``train`` and ``test``: the test
split takes ``n * test_fraction`` (rounded) examples of each class (of all, without classes), those
whose keys hash lowest, so the split is the same on every run and an example keeps its split
when others are added. Every example left out is listed, with why, in
``DATA_DIR/NAME/prepare_report.json``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import re
import shutil

import tensorflow_datasets as tfds

from multimodal_jax.data import stored_images
from multimodal_jax.data import user_files

VERSION = "1.0.0"
FILE_FORMATS = ("tfrecord", "array_record")
REPORT = "prepare_report.json"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_request(name: str, data_dir: str, test_fraction: float, resize: int,
                  file_format: str, overwrite: bool) -> None:
    """A usable name and options: ``ValueError`` naming the flag and the fix otherwise."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"--name={name!r}: use lower case letters, digits and '_', starting with "
                         "a letter (TFDS's dataset names), e.g. my_photos.")
    if name in tfds.list_builders(with_community_datasets=False) or name == "captioned_shapes":
        raise ValueError(f"--name={name!r} is the name of a TFDS builder, which would be used "
                         "instead of the prepared files; choose another name.")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"--test_fraction={test_fraction} must be in [0, 1).")
    if resize < 0:
        raise ValueError(f"--resize={resize} must be 0 (keep sizes) or a positive side length.")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"--file_format={file_format!r}; choose one of {FILE_FORMATS}.")
    target = os.path.join(data_dir, name, VERSION)
    if os.path.exists(target) and not overwrite:
        raise ValueError(f"{target} exists: dataset {name!r} is prepared already. Choose another "
                         "--name or --data_dir, or pass --overwrite to replace it.")


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def assign_splits(candidates: list[user_files.Candidate],
                  test_fraction: float) -> dict[str, list[user_files.Candidate]]:
    """``{"train": [...], "test": [...]}``: per class, the ``n * test_fraction`` (rounded)
    candidates whose keys hash lowest go to test (at least one in all when the fraction is
    positive and there are two or more); no test split for a fraction of 0."""
    by_label = collections.defaultdict(list)
    for candidate in candidates:
        by_label[candidate.label].append(candidate)
    test = set()
    for group in by_label.values():
        ranked = sorted(group, key=lambda c: _rank(c.key))
        test.update(c.key for c in ranked[:math.floor(len(group) * test_fraction + 0.5)])
    if test_fraction > 0 and not test and len(candidates) >= 2:
        test.add(min((c.key for c in candidates), key=_rank))
    splits = {"train": [c for c in candidates if c.key not in test]}
    if test_fraction > 0:
        splits["test"] = [c for c in candidates if c.key in test]
    return splits


def features(candidates: list[user_files.Candidate]) -> tfds.features.FeaturesDict:
    """The dataset's features: a caption list only where some image has several captions, a
    label only where the input names classes (their names sorted)."""
    several = any(len(c.captions) > 1 for c in candidates)
    spec = {"image": tfds.features.Image(shape=(None, None, 3)),
            "caption": tfds.features.Sequence(tfds.features.Text()) if several else tfds.features.Text(),
            "image/filename": tfds.features.Text()}
    labels = sorted({c.label for c in candidates if c.label is not None})
    if labels:
        spec["label"] = tfds.features.ClassLabel(names=labels)
    return tfds.features.FeaturesDict(spec)


def _examples(candidates, spec, resize: int, problems: list, reencoded: list):
    """``(key, example)`` of each readable candidate; the others go to ``problems``."""
    several = isinstance(spec["caption"], tfds.features.Sequence)
    for candidate, data in user_files.contents(candidates):
        if isinstance(data, user_files.Problem):
            problems.append(data)
            continue
        try:
            image, why = stored_images.prepared(data, resize or None)
        except stored_images.UnreadableImage as error:
            problems.append(user_files.Problem(candidate.key, f"unreadable image: {error}"))
            continue
        if why:
            reencoded.append({"item": candidate.key, "why": why})
        example = {"image": image, "image/filename": candidate.key,
                   "caption": list(candidate.captions) if several else candidate.captions[0]}
        if "label" in spec:
            example["label"] = candidate.label
        yield candidate.key, example


def prepare(name: str, data_dir: str, listing: user_files.Listing, source: str,
            test_fraction: float = 0.1, resize: int = 0, file_format: str = "tfrecord",
            overwrite: bool = False) -> dict:
    """Writes the dataset and its report; returns the report (``examples`` per split, every
    ``problem``, the images ``reencoded``, the ``classes``)."""
    check_request(name, data_dir, test_fraction, resize, file_format, overwrite)
    problems, reencoded = list(listing.problems), []
    candidates = listing.candidates
    if any(c.label is not None for c in candidates):  # classes named: every example needs one
        problems += [user_files.Problem(c.key, "no label while other rows have one")
                     for c in candidates if c.label is None]
        candidates = [c for c in candidates if c.label is not None]
    if not candidates:
        raise ValueError(f"No image of {source} can be used ({len(problems)} problems, e.g. "
                         f"{[p.problem for p in problems[:3]]}); nothing was written.")
    spec = features(candidates)
    splits = assign_splits(candidates, test_fraction)
    _remove_earlier(os.path.join(data_dir, name, VERSION), overwrite)
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version=VERSION, features=spec, data_dir=data_dir, file_format=file_format,
        split_datasets={split: _examples(group, spec, resize, problems, reencoded)
                        for split, group in splits.items()},
        description=f"Prepared by multimodal_jax's train.prepare from {source}.")
    report = {
        "name": name, "data_dir": os.path.abspath(data_dir), "source": source,
        "version": VERSION, "file_format": file_format,
        "examples": {split: int(info.num_examples) for split, info in builder.info.splits.items()},
        "classes": list(spec["label"].names) if "label" in spec else [],
        "caption_lists": isinstance(spec["caption"], tfds.features.Sequence),
        "problem_count": len(problems),
        "problems": [dataclass_dict(p) for p in problems],
        "ignored": listing.ignored,
        "reencoded": reencoded,
    }
    report["report"] = os.path.join(os.path.abspath(data_dir), name, REPORT)
    with open(report["report"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    return report


def dataclass_dict(problem: user_files.Problem) -> dict:
    return {"item": problem.item, "problem": problem.problem}


def _remove_earlier(target: str, overwrite: bool) -> None:
    """With ``overwrite``, removes an earlier preparation of this version (only a folder that
    TFDS wrote: it holds ``dataset_info.json``)."""
    if not (overwrite and os.path.exists(target)):
        return
    if not os.path.isfile(os.path.join(target, "dataset_info.json")):
        raise ValueError(f"{target} exists but is not a prepared TFDS dataset (no "
                         "dataset_info.json); it is left alone. Remove it by hand or choose "
                         "another --name.")
    shutil.rmtree(target)
