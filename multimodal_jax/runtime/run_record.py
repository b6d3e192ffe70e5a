"""A workdir's record of the run it holds, so that later commands need only ``--workdir``:

    WORKDIR/config.json      the resolved config the run trains with (prerequisites as paths),
                             rewritten at each (re)start of training, process 0 only
    WORKDIR/commands.jsonl   one line per start of training: its command line, the step it
                             started from, the number of processes

``config.json`` is fingerprinted in ``WORKDIR/run_files.json`` (``run_files.py``) when written
and checked when read: a record damaged or edited by hand is an error, not a silently different
run. A write that fails (a full disk) is a ``write_failures.WriteFailed``.

``load(workdir)`` gives the recorded config back as a ``ConfigDict`` (JSON lists as tuples, as
the config files write them); ``configs/recorded.py:WORKDIR`` is the same as a config file, so
``--config.FIELD=VALUE`` overrides work on it. ``check_matches(config, workdir)`` compares the
fields that decide what the checkpoint's parameters mean (task, model, tokenizer, image size and
normalisation, ...) with the record and names each difference: a config that no longer matches
the checkpoint is an error before anything is restored, not a silently wrong model.

No credential is written: a field whose name says it holds one (``*token``, ``*secret``,
``*password``, ``*api_key``, ...), a value that looks like one (``hf_...``, ``ghp_...``,
``AKIA...``, ``Bearer ...``) and the user part of a URL (``https://user:pass@host``) are replaced
by ``REDACTED`` in both files, and the record lists the redacted fields.
"""

import copy
import datetime
import json
import os
import re
from typing import Any
from typing import Optional
from typing import Sequence

import ml_collections
from etils import epath

from multimodal_jax import paths
from multimodal_jax import run_files
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import write_failures
from multimodal_jax.runtime.config_checks import ConfigError

FORMAT = 1
REDACTED = "REDACTED"
SECRET_NAME = re.compile(r"(^|_)(token|secret|password|passwd|api_?key|access_?key|"
                         r"credentials?|auth)$", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|"
                          r"xox[abpr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|Bearer\s+\S+)$")
URL_USER = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
# What decides the meaning of the checkpoint's parameters: a config that differs here from the
# recorded one builds another model, tokenizes or normalises differently.
IDENTITY_FIELDS = ("task", "loss", "num_classes", "model", "tokenizer", "condition", "gan.z_dim")
DATA_IDENTITY_FIELDS = ("image_size", "mean", "std")
PATH_FIELDS = (("tokenizer", "path"), ("data", "data_dir"), ("", "init_from"))
# Model fields that change how the same function is computed, not the function.
HOW_NOT_WHAT = ("dtype", "remat_policy", "attention_impl")


# How to get a damaged or edited config record back (run_files' error ends with it).
RESTORE_ADVICE = ("Restore config.json from a backup of the workdir, or delete it: the next "
                  "training command writes it again from its --config (until then, evaluating "
                  "and predicting need --config too). To change a field, pass "
                  "--config.FIELD=VALUE instead of editing the record.")


class RecordError(ConfigError):
    """A workdir's record is missing or unreadable, or a config disagrees with it."""


# ----------------------------------------------------------------------------- paths


def config_path(workdir: str) -> epath.Path:
    """``WORKDIR/config.json``."""
    return epath.Path(workdir) / workdir_lib.CONFIG_RECORD


def commands_path(workdir: str) -> epath.Path:
    """``WORKDIR/commands.jsonl``."""
    return epath.Path(workdir) / workdir_lib.COMMANDS


def has_record(workdir: str) -> bool:
    return config_path(workdir).exists()


# ----------------------------------------------------------------------------- redaction


def _redact_value(value: str) -> str:
    """``value`` with a URL's user part removed, or ``REDACTED`` if it looks like a secret."""
    if SECRET_VALUE.match(value.strip()):
        return REDACTED
    return URL_USER.sub(lambda m: m.group("scheme") + REDACTED + "@", value)


def _jsonable(value: Any, path: str, redacted: list[str]) -> Any:
    """A config value as JSON data (tuples as lists), secrets replaced (their paths noted)."""
    name = path.rsplit(".", 1)[-1]
    if isinstance(value, (dict, ml_collections.ConfigDict)):
        items = value.items() if isinstance(value, dict) else value.items(preserve_field_references=False)
        return {str(k): _jsonable(v, f"{path}.{k}" if path else str(k), redacted) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, path, redacted) for v in value]
    if isinstance(value, str):
        clean = REDACTED if value and SECRET_NAME.search(name) else _redact_value(value)
        if clean != value:
            redacted.append(path)
        return clean
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return repr(value)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with the values of secret-named flags and secret-looking values replaced."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-") and SECRET_NAME.search(flag.lstrip("-").rsplit(".", 1)[-1]):
            out.append(f"{flag}={REDACTED}")
        elif eq and flag.startswith("-"):
            out.append(f"{flag}={_redact_value(value)}")
        else:
            out.append(_redact_value(arg))
    return out


# ----------------------------------------------------------------------------- writing


def record_text(config: ml_collections.ConfigDict) -> str:
    """The JSON text of ``config``'s record (deterministic: same config, same text)."""
    redacted: list[str] = []
    data = _jsonable(config, "", redacted)
    record = {"format": FORMAT, "config": data, "redacted": sorted(set(redacted))}
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def _absolute(spec: str) -> str:
    """A path (or ``KIND:PATH``) that exists relative to the current folder, made absolute, so
    that the record reads the same from any folder; anything else as it is."""
    kind, sep, path = spec.partition(":")
    if sep and kind in init_from.KINDS:
        return f"{kind}:{_absolute(path)}"
    return os.path.abspath(spec) if spec and "://" not in spec and os.path.exists(spec) else spec


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` whose file and folder fields (tokenizer, data dir, ``init_from``,
    prerequisites' workdirs, recursively) are absolute where they exist."""
    config = copy.deepcopy(config)
    for block, name in PATH_FIELDS:
        holder = config.get(block) if block else config
        if holder is not None and isinstance(holder.get(name), str):
            holder[name] = _absolute(holder[name])
    for entry in (config.get("prerequisites") or {}).values():
        if isinstance(entry.get("workdir"), str):
            entry.workdir = _absolute(entry.workdir)
        if entry.get("config") is not None:
            entry.config = with_absolute_paths(entry.config)
    return config


def write(config: ml_collections.ConfigDict, workdir: str, command: Optional[Sequence[str]],
          start_step: int, processes: int = 1) -> None:
    """Records ``config`` (resolved; its paths made absolute) as ``WORKDIR/config.json`` and
    appends ``command`` (None: started from Python) to ``WORKDIR/commands.jsonl``. Call it on
    process 0 only, holding the workdir's lock. A failed write (no space, quota, ...) is a
    ``write_failures.WriteFailed``."""
    data = record_text(with_absolute_paths(config)).encode()
    line = {"argv": redact_argv(command) if command is not None else None,
            "cwd": os.getcwd() if command is not None else None, "start_step": start_step,
            "processes": processes,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = config_path(workdir)
    try:
        epath.Path(workdir).mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == data:
            run_files.adopt(workdir, workdir_lib.CONFIG_RECORD, data)  # (recorded before: a no-op)
        else:  # (a record that disagrees with the config was refused before, by check_matches)
            run_files.write(workdir, workdir_lib.CONFIG_RECORD, data, replaces=True)
        path = commands_path(workdir)
        paths.append_text(path, json.dumps(line) + "\n")
    except OSError as error:
        raise write_failures.WriteFailed(
            f"the record of the run ({workdir_lib.CONFIG_RECORD}, {workdir_lib.COMMANDS})",
            os.fspath(path), write_failures.cause_of(error)) from error


# ----------------------------------------------------------------------------- reading


def _as_config(value: Any) -> Any:
    """JSON data -> config values: objects as dicts, lists as tuples (recursively)."""
    if isinstance(value, dict):
        return {k: _as_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_as_config(v) for v in value)
    return value


def read(workdir: str) -> dict:
    """The record of ``workdir`` (``format``, ``config`` as JSON data, ``redacted``)."""
    path = config_path(workdir)
    if not path.exists():
        hint = ("it holds checkpoints from a run that predates the record: pass the config it "
                "was trained with, --config CONFIG_FILE" if workdir_lib.latest_step(workdir) is not None
                else "train a run into it first (python -m train --config CONFIG --workdir DIR)")
        raise RecordError(f"The workdir {workdir!r} has no {workdir_lib.CONFIG_RECORD} (the record of "
                          f"the config its run trained with): {hint}.")
    data = run_files.read(workdir, workdir_lib.CONFIG_RECORD, RESTORE_ADVICE)
    try:
        record = json.loads(data.decode("utf-8"))
        if not isinstance(record.get("config"), dict):
            raise ValueError("it has no 'config' object")
    except (ValueError, AttributeError) as error:  # (a record unreadable since it was written)
        raise RecordError(f"{os.fspath(path)!r} cannot be read as a config record ({error}); "
                          "pass --config CONFIG_FILE instead, or restore the file.") from None
    return record


def load(workdir: str) -> ml_collections.ConfigDict:
    """The config ``workdir``'s run was trained with (as recorded)."""
    return ml_collections.ConfigDict(_as_config(read(workdir)["config"]))


# ----------------------------------------------------------------------------- matching


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": leaf}`` (a non-dict value is one leaf at ``prefix``)."""
    if hasattr(value, "items"):
        items = value.items() if isinstance(value, dict) else value.to_dict().items()
        out = {}
        for k, v in items:
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: _as_config(value) if isinstance(value, list) else value}


def identity(config) -> dict[str, Any]:
    """The fields of ``config`` that decide what its checkpoint's parameters mean, flat."""
    config = config if hasattr(config, "get") else ml_collections.ConfigDict(config)
    out = {}
    for name in IDENTITY_FIELDS:
        head, _, tail = name.partition(".")
        value = config.get(head)
        if tail and value is not None:
            value = value.get(tail)
        if value is not None:
            out.update(_flat(value, name))
    data = config.get("data") or {}
    for name in DATA_IDENTITY_FIELDS:
        value = datasets.field(data, name)
        out[f"data.{name}"] = tuple(value) if isinstance(value, (list, tuple)) else value
    if isinstance(out.get("tokenizer.path"), str):
        out["tokenizer.path"] = _absolute(out["tokenizer.path"])
    return {k: v for k, v in out.items()
            if not (k.startswith("model.") and k.rsplit(".", 1)[-1] in HOW_NOT_WHAT)}


def differences(config, recorded) -> list[str]:
    """``"config.FIELD=here, recorded there"`` for each identity field that differs."""
    ours, theirs = identity(config), identity(recorded)
    listed = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key, "(absent)"), theirs.get(key, "(absent)")
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b:
            continue
        if a != b and not (_redacted(b)):
            listed.append(f"config.{key}={a!r} here, {b!r} in the record")
    return listed


def _redacted(value) -> bool:
    return isinstance(value, str) and REDACTED in value


def check_matches(config: ml_collections.ConfigDict, workdir: str) -> None:
    """``RecordError`` naming every field where ``config`` and the record of ``workdir`` (if it
    has one) disagree on what the checkpoint's parameters mean."""
    if not has_record(workdir):
        return
    listed = differences(config, load(workdir))
    if listed:
        shown = "; ".join(listed[:8]) + (f"; and {len(listed) - 8} more" if len(listed) > 8 else "")
        raise RecordError(
            f"The config does not match the run recorded in {os.fspath(config_path(workdir))!r}, "
            f"whose checkpoints were trained with it: {shown}. Leave out --config to use the "
            "recorded config (overrides such as --config.evaluation.batch_size=64 still apply), "
            "or use another --workdir for a different model.")
