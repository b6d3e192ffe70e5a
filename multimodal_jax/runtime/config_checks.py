"""Checks a run's config before anything heavy runs, so bad input gets one clear message.

``validate(config, workdir)`` raises ``ConfigError`` (a ``ValueError``) naming the field, what
was wrong and how to fix it; the CLI prints it and exits with code 2. Files the config names
(tokenizer, pretrained weights) are opened here too, without executing anything (no pickle),
so a file of the wrong format is reported before data preparation and compilation.

A task module may define ``check_config(config)`` raising ``ValueError``; it runs here too
(a module without one gets its ``LOSSES`` tuple checked against ``config.loss``).
"""

import dataclasses
import difflib
import importlib
import json
import os
import struct
import tempfile
import zipfile

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from multimodal_jax.runtime import guards
from multimodal_jax.pretrained import init_from
from multimodal_jax.tasks import optim
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax import tasks
from multimodal_jax.data import pipeline
from multimodal_jax.data import tokenizers
from multimodal_jax.models import factory
from multimodal_jax.models import text
from multimodal_jax.models import vit

REQUIRED_INTS = ("total_steps", "batch_size", "seed", "checkpoint_every_steps",
                 "eval_every_steps", "log_every_steps", "keep_checkpoints")
# Top-level fields every task may have; a field close to one of these but not it is a typo.
COMMON_FIELDS = REQUIRED_INTS + ("task", "loss", "init_from", "on_nonfinite", "data", "tokenizer",
                                 "model", "optim", "parallel", "evaluation")
BUILTIN_DATASET = "captioned_shapes"
TOKENIZERS = ("sentencepiece", "bytes", "clip_bpe")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Model fields the factory fills in itself, not from the config.
SET_BY_FACTORY = ("vocab_size", "pad_id", "eos_id", "dtype", "parent", "name")
PARALLEL_FIELDS = ("driver", "fsdp", "rules", "logical_axes", "peak_tflops")
TOKENIZER_FIELDS = ("kind", "path", "vocab_size", "max_len")
OPTIONAL_OPTIM_FIELDS = ("mu_dtype", "layer_decay")  # beside optim.default_config()'s


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and how to fix it."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_top_level(config: ml_collections.ConfigDict) -> None:
    for field in REQUIRED_INTS:
        _check(field in config, f"config.{field} is missing: every config needs {REQUIRED_INTS}.")
        value = config[field]
        _check(_is_int(value),
               f"config.{field} must be an integer, got {value!r} ({type(value).__name__}).")
        _check(value >= 0 if field == "seed" else value > 0,
               f"config.{field} must be {'>= 0' if field == 'seed' else 'positive'}, got {value}.")
    try:
        mesh_lib.check_batch_divides(config.batch_size, jax.device_count(), "config.batch_size")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    check_parallel(config.parallel)
    mode = config.get("on_nonfinite", "skip")
    _check(mode in guards.MODES, f"config.on_nonfinite={mode!r}; choose one of {guards.MODES}: "
           "'skip' drops a non-finite update and counts it, 'stop' saves the last good state "
           "and stops.")
    _check_no_typos(config)


def check_parallel(block: ml_collections.ConfigDict) -> None:
    """Known fields, and a driver / FSDP / rules combination that can run on these devices."""
    _check_fields(block, PARALLEL_FIELDS, "config.parallel")
    try:
        drivers.check_config(block, jax.device_count())
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_optim(block: ml_collections.ConfigDict, where: str = "config.optim") -> None:
    """An AdamW block (``optim.default_config`` and its optional extras): known fields and
    numbers where numbers are read. A block of named optimisers (a GAN's ``g``, ``d``) is
    checked block by block."""
    if "lr" not in block:
        for name, sub in block.items():
            if isinstance(sub, ml_collections.ConfigDict):
                check_optim(sub, f"{where}.{name}")
        return
    known = list(optim.default_config().keys()) + list(OPTIONAL_OPTIM_FIELDS)
    _check_fields(block, known, where)
    for name in set(block.keys()) - {"mu_dtype"}:
        value = block[name]
        _check(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
               f"{where}.{name} must be a number, got {value!r} ({type(value).__name__}).")
    _check(block.lr > 0, f"{where}.lr must be positive, got {block.lr}.")
    _check(block.get("mu_dtype") in (None, "", "float32", "bfloat16"),
           f"{where}.mu_dtype={block.get('mu_dtype')!r}; choose 'bfloat16', 'float32' or ''.")


def _check_no_typos(config: ml_collections.ConfigDict) -> None:
    """A top-level field that is not a known one but looks like one is a typo (it would be
    silently ignored). Other unknown top-level fields may belong to a task: left alone."""
    for field in set(config.keys()) - set(COMMON_FIELDS):
        close = difflib.get_close_matches(field, COMMON_FIELDS, n=1, cutoff=0.8)
        _check(not close, f"config.{field} is not a field this package reads; did you mean "
               f"config.{close[0] if close else ''}? (A misspelt field would be silently ignored.)")


def check_task(config: ml_collections.ConfigDict) -> None:
    """The task exists, and its module's own checks (or its LOSSES) pass."""
    task = config.get("task", "contrastive")
    _check(task in tasks.TASKS,
           f"config.task={task!r} is unknown; choose one of {sorted(tasks.TASKS)}.")
    module = importlib.import_module(tasks.TASKS[task].__module__)
    if hasattr(module, "check_config"):
        try:
            module.check_config(config)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    elif hasattr(module, "LOSSES") and "loss" in config:
        _check(config.loss in module.LOSSES,
               f"config.loss={config.loss!r} is unknown for the {task} task; choose one of "
               f"{module.LOSSES}.")


def _check_fields(block: ml_collections.ConfigDict, known, where: str) -> None:
    """Every field of ``block`` is one the code reads."""
    unknown = sorted(set(block.keys()) - set(known))
    if unknown:
        hints = [f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, known, n=1)) else ""
                 for u in unknown]
        listed = ", ".join(f"{u!r}{h}" for u, h in zip(unknown, hints))
        raise ConfigError(f"{where} has unknown field(s) {listed}; its fields are {sorted(known)}.")


def _module_fields(module_class) -> list[str]:
    return [f.name for f in dataclasses.fields(module_class) if f.name not in SET_BY_FACTORY]


def _check_width(block: ml_collections.ConfigDict, where: str, sizes: dict) -> None:
    width = block.get("width") or sizes.get("width")
    heads = block.get("num_heads") or sizes.get("num_heads")
    for name, value in (("width", width), ("num_heads", heads), ("depth", block.get("depth")),
                        ("mlp_dim", block.get("mlp_dim"))):
        _check(value is None or (_is_int(value) and value > 0),
               f"{where}.{name} must be a positive integer, got {value!r}.")
    if width and heads:
        _check(width % heads == 0, f"{where}.width={width} is not divisible by num_heads={heads}: "
               "each head gets width / num_heads channels; choose e.g. "
               f"num_heads={_divisor(width, heads)}.")


def _divisor(width: int, heads: int) -> int:
    """The divisor of ``width`` closest to ``heads``."""
    return min((d for d in range(1, width + 1) if width % d == 0), key=lambda d: abs(d - heads))


def check_image_model(image: ml_collections.ConfigDict, image_size: int) -> None:
    """Known fields, variant string valid, and the image size tiled by the patch size."""
    _check_fields(image, _module_fields(vit.ViT), "config.model.image")
    _check(_is_int(image_size) and image_size > 0,
           f"config.data.image_size must be a positive integer, got {image_size!r}.")
    try:
        sizes = vit.parse_variant(image.variant) if image.get("variant") else {}
    except ValueError as error:
        raise ConfigError(f"config.model.image.variant: {error}") from None
    patch = image.get("patch_size") or sizes.get("patch_size")
    _check(patch is not None, "config.model.image needs a patch_size (or a variant like 'B/16').")
    _check(image_size % patch == 0,
           f"config.data.image_size={image_size} is not divisible by the patch size {patch}: "
           f"use an image size that is a multiple of {patch} (e.g. {image_size // patch * patch or patch}).")
    _check(image.get("pool", "tok") in vit.POOLS,
           f"config.model.image.pool={image.get('pool')!r}; choose one of {vit.POOLS}.")
    _check_width(image, "config.model.image", sizes)


def check_text_model(config: ml_collections.ConfigDict) -> None:
    """Known fields, and tokens no longer than the text model's position table."""
    block = config.model.text
    _check_fields(block, _module_fields(text.TextTransformer), "config.model.text")
    _check_width(block, "config.model.text", {})
    tokens = config.get("tokenizer", {}).get("max_len")
    limit = block.get("max_len", 77)
    _check(tokens is None or tokens <= limit,
           f"config.tokenizer.max_len={tokens} is longer than config.model.text.max_len={limit} "
           "(the text model's position table): make them equal.")


def check_data(data: ml_collections.ConfigDict) -> None:
    """Known fields, and the dataset is the built-in one (prepared on demand) or prepared in
    data_dir."""
    _check_fields(data, pipeline.DEFAULTS, "config.data")
    _check(isinstance(data.get("name"), str) and data.name,
           "config.data.name is empty; set e.g. 'captioned_shapes/32px' (the built-in dataset).")
    name = data.name.split("/")[0]
    if name == BUILTIN_DATASET:
        from multimodal_jax.data import shapes_builder  # noqa: PLC0415 - registers the builder
        variants = [c.name for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS]
        variant = data.name.split("/")[1].split(":")[0] if "/" in data.name else variants[0]
        _check(variant in variants, f"config.data.name={data.name!r}: the built-in dataset has "
               f"the configs {variants}, e.g. '{BUILTIN_DATASET}/32px'.")
        return
    _check(name in tfds.list_builders(),
           f"config.data.name={data.name!r} is not a TFDS dataset; check the spelling or use "
           f"'{BUILTIN_DATASET}/32px', the built-in dataset.")
    builder = tfds.builder(data.name, data_dir=data.data_dir or None)
    _check(builder.is_prepared(),
           f"Dataset {data.name!r} is not prepared in {builder.data_dir}. Nothing is downloaded at "
           "run time: prepare it first (tfds build / download_and_prepare with manual files) and "
           "point config.data.data_dir at its folder.")


def check_tokenizer(tokenizer: ml_collections.ConfigDict) -> None:
    """Known fields, a known kind, whole-number sizes, and a given file exists and reads as
    that kind of tokenizer."""
    _check_fields(tokenizer, TOKENIZER_FIELDS, "config.tokenizer")
    _check(tokenizer.kind in TOKENIZERS,
           f"config.tokenizer.kind={tokenizer.kind!r}; choose one of {TOKENIZERS}.")
    for name in ("vocab_size", "max_len"):
        value = tokenizer.get(name)
        _check(value is None or (_is_int(value) and value > 0),
               f"config.tokenizer.{name} must be a positive integer, got {value!r}.")
    path = tokenizer.get("path", "")
    _check(not path or os.path.exists(path),
           f"config.tokenizer.path={path!r} does not exist; give an existing tokenizer file, or "
           "leave it empty to train a SentencePiece model on the training captions.")
    if path and tokenizer.kind != "bytes":
        try:
            tokenizers.get_tokenizer(tokenizer)
        except Exception as error:  # noqa: BLE001 - any failure to parse a user's file
            raise ConfigError(f"config.tokenizer.path={path!r} cannot be read as a "
                              f"{tokenizer.kind} tokenizer: {_one_line(error)}") from None


def check_init_from(spec: str) -> None:
    """``config.init_from`` names weights that exist and look like what its kind reads."""
    try:
        kind, path = init_from.parse(spec)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    where = f"config.init_from={spec!r}"
    _check(os.path.exists(path), f"{where}: {path!r} does not exist.")
    if kind == "workdir":
        _check(os.path.isdir(os.path.join(path, "checkpoints")),
               f"{where}: {path!r} holds no checkpoints/ folder; give the workdir of a finished run.")
        return
    if os.path.isdir(path):
        _check(kind == "openai_clip" or os.path.exists(os.path.join(path, "config.json")),
               f"{where}: {path!r} has no config.json; give a folder written by Hugging Face "
               "`save_pretrained`.")
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]
        _check(bool(files), f"{where}: {path!r} holds no .safetensors weights (pickle-based "
               "pytorch_model.bin files are not loaded, for safety); re-save the model with "
               "safetensors.")
    else:
        files = [path]
    for file in files:
        check_weights_file(file, where)


def check_weights_file(path: str, where: str = "weights") -> None:
    """A ``.safetensors`` or ``.npz`` file whose header and size hold together, read without
    executing anything; anything else (pickle-based formats included) is refused."""
    if path.endswith(PICKLE_SUFFIXES):
        raise ConfigError(f"{where}: {path!r} is a pickle-based file, which is never loaded (it "
                          "can execute code). Convert it once where you trust it, e.g. "
                          "`safetensors.torch.save_file(torch.load(f), 'model.safetensors')`.")
    if path.endswith(".safetensors"):
        problem = _safetensors_problem(path)
    elif path.endswith(".npz"):
        problem = _npz_problem(path)
    else:
        problem = "only .safetensors and .npz weight files are read"
    _check(problem is None, f"{where}: {path!r} is not a usable weights file: {problem}.")


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
        return f"it is not a readable .npz archive ({_one_line(error)})"
    return None


def check_workdir(workdir: str) -> None:
    """The workdir is a folder, or can become one, that this process can write (probed with a
    nameless temporary file: permission bits alone do not tell, e.g. for root)."""
    _check(bool(workdir), "The workdir is empty: pass --workdir DIR.")
    _check("://" not in workdir,
           f"The workdir {workdir!r} is a URL; checkpoints, metrics and pictures are written "
           "through the file system, so give a path on a file system every host mounts (e.g. a "
           "GCS bucket through gcsfuse at /mnt/shared, or NFS).")
    parent = os.path.abspath(workdir)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    _check(os.path.isdir(parent), f"The workdir {workdir!r} cannot be a folder: {parent!r} is a "
           "file. Choose another path.")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise ConfigError(f"The workdir {workdir!r} cannot be written (creating a file in "
                          f"{parent!r} fails: {error.strerror}): choose another.") from None


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:400]


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """All checks for a training or evaluation run of ``config`` in ``workdir``."""
    check_top_level(config)
    check_workdir(workdir)
    check_task(config)
    _check(config.model.dtype in factory.DTYPES,
           f"config.model.dtype={config.model.dtype!r}; choose one of {sorted(factory.DTYPES)}.")
    if "tokenizer" in config:  # before the text model, which compares its max_len
        check_tokenizer(config.tokenizer)
    if "image" in config.model:
        check_image_model(config.model.image, config.data.image_size)
    if "text" in config.model:
        check_text_model(config)
    if "optim" in config:
        check_optim(config.optim)
    if config.get("init_from") and config.init_from not in config.get("prerequisites", {}):
        check_init_from(config.init_from)  # (a prerequisite's run is checked or trained first)
    check_data(config.data)
