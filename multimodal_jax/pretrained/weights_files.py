"""Weights files, read without executing anything: ``.safetensors`` and ``.npz`` (arrays only),
or a Hugging Face model folder of safetensors shards; pickle-based formats are refused with the
one-line conversion that makes them safe.
"""

import json
import os
import struct
import zipfile

import numpy as np

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
CONVERT_HINT = "`safetensors.torch.save_file(torch.load(f), 'model.safetensors')`"


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` / ``.npz`` file, or of a Hugging Face model directory."""
    if os.path.isdir(path):
        return _read_hf_dir(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint at {path!r}: give a .safetensors or .npz file, or "
                                "a directory holding model.safetensors.")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    raise ValueError(f"Cannot read {path!r}: only .safetensors and .npz weights are supported "
                     "(pickle-based .bin/.pt/.pth files are not loaded, for safety). Convert them "
                     f"once with {CONVERT_HINT}.")


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file  # noqa: PLC0415 - only where weights are read
    return load_file(path)


def _read_hf_dir(path: str) -> dict[str, np.ndarray]:
    """``model.safetensors``, or the shards listed in ``model.safetensors.index.json``."""
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return _read_safetensors(single)
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for shard in shards:
            out.update(_read_safetensors(os.path.join(path, shard)))
        return out
    raise FileNotFoundError(
        f"No model.safetensors (or model.safetensors.index.json) in {path!r}. Only safetensors "
        "weights are loaded; re-save the model with `save_pretrained(dir)` (safetensors is the "
        "default) if it only has pytorch_model.bin.")


def read_json(path: str) -> dict:
    """The JSON object in ``path``, with a clear error when it is absent."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {os.path.basename(path)} at {path!r}: expected a directory "
                                "written by Hugging Face `save_pretrained`.")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_weights_file(path: str, where: str = "weights") -> None:
    """A ``.safetensors`` or ``.npz`` file whose header and size hold together, read without
    executing anything; anything else (pickle-based formats included) is refused."""
    if path.endswith(PICKLE_SUFFIXES):
        raise ValueError(f"{where}: {path!r} is a pickle-based file, which is never loaded (it "
                         f"can execute code). Convert it once where you trust it, e.g. {CONVERT_HINT}.")
    if path.endswith(".safetensors"):
        problem = _safetensors_problem(path)
    elif path.endswith(".npz"):
        problem = _npz_problem(path)
    else:
        problem = "only .safetensors and .npz weight files are read"
    if problem is not None:
        raise ValueError(f"{where}: {path!r} is not a usable weights file: {problem}.")


def _safetensors_problem(path: str):
    """None for a well-formed safetensors file: 8-byte header size, JSON header, and every
    tensor's bytes inside the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = f.read(8)
        if len(start) < 8:
            return "it is too short to be safetensors"
        (length,) = struct.unpack("<Q", start)
        if length > size - 8:
            return "its header size is larger than the file (not safetensors, or truncated)"
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "its header is not JSON (not a safetensors file)"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        return f"it is truncated ({size} bytes, its header describes {8 + length + max(ends)})"
    return None


def _npz_problem(path: str):
    """None for a zip of .npy arrays without Python objects (which would need pickle)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    dtype = read(f)[2]
                if dtype.hasobject:
                    return f"{member} holds Python objects, which would need pickle"
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        return f"it is not a readable .npz archive ({' '.join(str(error).split())[:300]})"
    return None
