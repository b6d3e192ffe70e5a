"""A user's images and captions in the three layouts ``train.prepare`` reads, listed before any
image is opened: a captions file (CSV with a header ``image,caption``, or JSONL objects with
those keys; an optional ``label``), a folder of class folders, or webdataset tar shards
(``KEY.jpg|png`` + ``KEY.txt``). Each gives ``Candidate``s and the ``Problem``s met while
listing (a missing path, an empty caption, ...), never dropping anything silently;
``contents`` then yields each candidate's bytes.

Everything a user gives stays data: paths in a captions file resolve inside its root (that of
``--images_root``, else the file's folder) or are refused, symbolic links included; tar shards
are read member by member in memory, never extracted, their names used only as keys.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import json
import os
import re
import tarfile
from typing import Iterable
from typing import Iterator

MAX_IMAGE_BYTES = 256 * 2 ** 20  # a larger file is reported, not read
MAX_CAPTION_BYTES = 2 ** 20
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One example to be: a unique ``key`` (its path below the root, or the webdataset key),
    its captions, an optional class name, and where its bytes are (a file, or a tar member)."""

    key: str
    captions: tuple[str, ...]
    label: str | None = None
    path: str = ""
    member: str = ""


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something of the user's input left out of the dataset, and why."""

    item: str
    problem: str


@dataclasses.dataclass
class Listing:
    """What a layout found: candidates, problems, and files skipped for a harmless reason
    (``{reason: count}``, e.g. hidden files)."""

    candidates: list[Candidate]
    problems: list[Problem]
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------- captions file


def captions_file(path: str, images_root: str | None = None) -> Listing:
    """The rows of a CSV (header ``image,caption[,label]``) or JSONL file (one object per line
    with ``image``, ``caption`` (a string or a list of strings), optionally ``label``). Rows of
    the same image are one example with all their captions."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--captions {path} does not exist.")
    root = os.path.realpath(images_root or os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--images_root {images_root} is not a folder.")
    rows = _jsonl_rows(path) if path.endswith((".jsonl", ".json")) else _csv_rows(path)
    problems, captions, labels, paths = [], collections.defaultdict(list), {}, {}
    for where, row in rows:
        if isinstance(row, Problem):
            problems.append(row)
            continue
        image, texts, label = row
        found = _inside(root, image)
        item = f"{where} ({image!r})"
        if found in ("outside", "empty path") or not os.path.isfile(found):
            problems.append(Problem(item, {"outside": f"path escapes the images root {root}; refused",
                                           "empty path": "no image path"}.get(
                                               found, "image file not found")))
            continue
        texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
        if not texts:
            problems.append(Problem(item, "empty caption"))
            continue
        key = os.path.relpath(found, root)
        if key in labels and labels[key] != label:
            problems.append(Problem(item, f"label {label!r} differs from {labels[key]!r} given "
                                          "earlier for the same image; the first is kept"))
        labels.setdefault(key, label)
        captions[key].extend(texts)
        paths[key] = found
    candidates = [Candidate(k, tuple(captions[k]), labels[k], paths[k]) for k in captions]
    return Listing(candidates, problems)


def _csv_rows(path: str) -> Iterator[tuple[str, object]]:
    """``(where, (image, [caption], label) | Problem)`` per data row of a CSV file."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if "image" not in header or "caption" not in header:
            raise ValueError(f"--captions {path}: the CSV header must name the columns 'image' "
                             f"and 'caption' (optionally 'label'); it is {header}.")
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip() or None
            yield f"{os.path.basename(path)}:{line}", ((row.get("image") or "").strip(),
                                                        [row.get("caption") or ""], label)


def _jsonl_rows(path: str) -> Iterator[tuple[str, object]]:
    """``(where, (image, captions, label) | Problem)`` per non-blank line of a JSONL file."""
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            where = f"{os.path.basename(path)}:{line}"
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                yield where, Problem(where, f"not a JSON object: {error.msg}")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("image", ""), str):
                yield where, Problem(where, "not a JSON object with a string 'image'")
                continue
            caption = row.get("caption", "")
            texts = caption if isinstance(caption, list) else [caption]
            label = row.get("label")
            yield where, (row.get("image", "").strip(), texts,
                          str(label).strip() or None if label is not None else None)


def _inside(root: str, relative: str) -> str:
    """The real path of ``relative`` below ``root``, or "outside" / "empty path"."""
    if not relative or "\x00" in relative:
        return "empty path"
    path = os.path.realpath(os.path.join(root, relative))
    return path if os.path.commonpath([root, path]) == root and path != root else "outside"


# ----------------------------------------------------------------------------- image folder


def image_folder(root: str, templates: Iterable[str]) -> Listing:
    """``root/CLASS/...`` image files: the label is the folder name, the captions are the
    templates filled with it (``_`` read as a space). Hidden files are ignored (counted)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--image_folder {root} is not a folder.")
    root = os.path.realpath(root)
    templates = tuple(templates)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"--image_folder {root} has no class folders: put each class's images "
                         "in a folder named after it (root/cat/1.jpg, root/dog/2.png, ...).")
    listing = Listing([], [])
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir():
            reason = "hidden files" if entry.name.startswith(".") else "files beside the class folders"
            listing.ignored[reason] = listing.ignored.get(reason, 0) + 1
    for name in classes:
        captions = tuple(t.format(name.replace("_", " ")) for t in templates)
        before = len(listing.candidates)
        for folder, subfolders, files in os.walk(os.path.join(root, name)):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for file in sorted(files):
                path = os.path.join(folder, file)
                key = os.path.relpath(path, root)
                if file.startswith("."):
                    listing.ignored["hidden files"] = listing.ignored.get("hidden files", 0) + 1
                elif _inside(root, key) != os.path.realpath(path):
                    listing.problems.append(Problem(key, f"link leading outside {root}; refused"))
                elif not os.path.isfile(path):
                    listing.problems.append(Problem(key, "not a regular file (a broken link?)"))
                else:
                    listing.candidates.append(Candidate(key, captions, name, os.path.realpath(path)))
        if len(listing.candidates) == before:
            listing.problems.append(Problem(name + "/", "class folder without files; class left out"))
    return listing


# ----------------------------------------------------------------------------- webdataset


def shards(pattern: str) -> list[str]:
    """The tar files of a webdataset pattern: braces (``{000..009}``, ``{a,b}``) then glob."""
    paths = sorted({p for expanded in _braces(pattern) for p in glob.glob(expanded)})
    if not paths:
        raise FileNotFoundError(f"--webdataset {pattern} matches no file.")
    return paths


def _braces(pattern: str) -> list[str]:
    """``a{1..3}b`` -> a1b a2b a3b (zero padding kept), ``{x,y}`` -> x y; nested left to right."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    body, head, tail = match.group(1), pattern[:match.start()], pattern[match.end():]
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        lo, hi = numbers.groups()
        options = [str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [p for option in options for p in _braces(head + option + tail)]


def _split_name(name: str) -> tuple[str, str]:
    """webdataset's convention: ``dir/0001.jpg`` -> key ``dir/0001``, extension ``jpg`` (the
    extension starts at the first dot of the base name)."""
    folder, base = os.path.split(name)
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def webdataset(pattern: str) -> Listing:
    """Samples of the shards: ``KEY.txt`` the caption, ``KEY.jpg|jpeg|png|...`` the image. Only
    captions are read here; members that are not regular files are refused (listed)."""
    listing = Listing([], [])
    seen: dict[str, str] = {}
    for shard in shards(pattern):
        images, texts = {}, {}
        try:
            with tarfile.open(shard, "r:*") as tar:
                for member in tar:
                    _list_member(tar, member, shard, images, texts, listing)
        except (tarfile.TarError, OSError, EOFError) as error:
            listing.problems.append(Problem(shard, f"unreadable tar: {error}; the rest of it is left out"))
        for key in sorted(set(images) | set(texts)):
            item = f"{os.path.basename(shard)}:{key}"
            if key in seen:
                listing.problems.append(Problem(item, f"key also in {seen[key]}; the first is kept"))
            elif key not in texts:
                listing.problems.append(Problem(item, "image without a .txt caption"))
            elif key not in images:
                listing.problems.append(Problem(item, "caption without an image"))
            elif not texts[key]:
                listing.problems.append(Problem(item, "empty caption"))
            else:
                seen[key] = os.path.basename(shard)
                listing.candidates.append(Candidate(key, (texts[key],), None, shard, images[key]))
    return listing


def _list_member(tar, member, shard: str, images: dict, texts: dict, listing: Listing) -> None:
    """Records one tar member: an image's name, a caption's text, or why it is skipped."""
    if member.isdir():
        return
    key, extension = _split_name(member.name)
    item = f"{os.path.basename(shard)}:{member.name}"
    if not member.isfile():
        listing.problems.append(Problem(item, "not a regular file (link or device); refused"))
    elif extension == "txt":
        if member.size > MAX_CAPTION_BYTES:
            listing.problems.append(Problem(item, f"caption of {member.size} bytes; too large"))
        else:
            texts[key] = tar.extractfile(member).read().decode("utf-8", errors="replace").strip()
    elif extension in IMAGE_EXTENSIONS:
        if key in images:
            listing.problems.append(Problem(item, f"second image for key {key!r}; the first is kept"))
        else:
            images[key] = member.name
    else:
        reason = f"members with extension .{extension or '(none)'}"
        listing.ignored[reason] = listing.ignored.get(reason, 0) + 1


# ----------------------------------------------------------------------------- bytes


def contents(candidates: list[Candidate]) -> Iterator[tuple[Candidate, bytes | Problem]]:
    """Each candidate with its bytes (or the problem reading them): files in the order given,
    then tar members shard by shard, each shard read once from start to end."""
    in_tars = collections.defaultdict(dict)
    for candidate in candidates:
        if candidate.member:
            in_tars[candidate.path][candidate.member] = candidate
            continue
        yield candidate, _file_bytes(candidate)
    for shard, wanted in in_tars.items():
        yield from _tar_bytes(shard, wanted)


def _file_bytes(candidate: Candidate) -> bytes | Problem:
    try:
        size = os.path.getsize(candidate.path)
        if size > MAX_IMAGE_BYTES:
            return Problem(candidate.key, f"file of {size} bytes; larger than {MAX_IMAGE_BYTES}")
        with open(candidate.path, "rb") as f:
            return f.read()
    except OSError as error:
        return Problem(candidate.key, f"unreadable file: {error.strerror or error}")


def _tar_bytes(shard: str, wanted: dict) -> Iterator[tuple[Candidate, bytes | Problem]]:
    """The wanted members of one shard, read in memory (``extractfile``, never ``extract``)."""
    try:
        with tarfile.open(shard, "r:*") as tar:
            for member in tar:
                candidate = wanted.pop(member.name, None)
                if candidate is None:
                    continue
                if member.size > MAX_IMAGE_BYTES:
                    yield candidate, Problem(candidate.key, f"member of {member.size} bytes; too large")
                else:
                    yield candidate, tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        for candidate in wanted.values():
            yield candidate, Problem(candidate.key, f"unreadable tar {shard}: {error}")
        return
    for candidate in wanted.values():
        yield candidate, Problem(candidate.key, "member vanished from its shard")
