"""What the command-line entry points share: their flags, process setup, flag parsing and
clear exits, the metrics line.

Exit codes: 0 done (or stopped by a preemption notice, with a checkpoint to resume from);
2 bad command line, config or input file (one paragraph on stderr, no traceback); 3 the run
met a non-finite value with ``on_nonfinite='stop'`` (its last good state is checkpointed);
1 no restorable checkpoint, or anything unexpected (with its traceback).
"""

import importlib.util
import json
import logging
import os
import sys
import traceback
from typing import Callable
from typing import NamedTuple
from typing import Optional
from typing import Sequence

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags
from ml_collections.config_flags import tuple_parser

from multimodal_jax import fields
from multimodal_jax.data import datasets
from multimodal_jax.runtime import distributed
from multimodal_jax.runtime import run_record
from multimodal_jax.runtime.checkpoint import CheckpointError
from multimodal_jax.runtime.config_checks import ConfigError
from multimodal_jax.runtime.guards import NonFiniteError

BAD_INPUT, NON_FINITE, FAILED = 2, 3, 1


class RunFlags(NamedTuple):
    """The flags of a command that runs a config in a workdir (and joins a multi-host job)."""

    config: flags.FlagHolder
    workdir: flags.FlagHolder
    distributed: dict


def define_run_flags(workdir_help: str) -> RunFlags:
    """Defines ``--config``, ``--workdir`` and the multi-host flags (once per process)."""
    config = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                             lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, workdir_help)
    flags.mark_flags_as_required(["config", "workdir"])
    return RunFlags(config, workdir, dict(
        coordinator_address=flags.DEFINE_string(
            "coordinator_address", None, "host:port of process 0, the same on every process "
            "(multi-host without TPU/Slurm/MPI auto-detection)."),
        num_processes=flags.DEFINE_integer(
            "num_processes", None, "Number of processes (hosts) in the job; 1 turns off "
            "auto-detection."),
        process_id=flags.DEFINE_integer("process_id", None, "This process's index, 0 .. "
                                        "num_processes - 1.")))


def run_command(run_flags: RunFlags, run: Callable) -> None:
    """A command's body: joins the job, sets up logging, ``run(config, workdir)`` with clear
    exits, and prints its metrics as the last line."""
    job = {name: holder.value for name, holder in run_flags.distributed.items()}
    keep_jax_off_absent_tpus()
    run_or_exit(lambda: distributed.initialize(**job))
    setup_process()
    metrics = run_or_exit(lambda: run(run_flags.config.value, run_flags.workdir.value))
    print_metrics(metrics)


def main(run: Callable, workdir_help: str) -> None:
    """A whole command: defines its flags, parses them (one-paragraph errors) and runs
    ``run(config, workdir)`` as an absl program."""
    run_flags = define_run_flags(workdir_help)
    app.run(lambda argv: run_command(run_flags, run),
            flags_parser=lambda argv: parse_flags(with_recorded_config(argv)))


def keep_jax_off_absent_tpus() -> None:
    """Where libtpu is installed (to compile for TPUs) but no TPU is attached, and no GPU
    plugin either, JAX would try the TPU first and log a screen of warnings: use the CPU."""
    plugins = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin")
    if (os.environ.get("JAX_PLATFORMS") or distributed.detected_cluster() == "tpu"
            or importlib.util.find_spec("libtpu") is None
            or any(importlib.util.find_spec(name) for name in plugins)):
        return
    jax.config.update("jax_platforms", "cpu")


def setup_process() -> None:
    """Our progress at INFO on stderr (process 0; the others report warnings and errors
    only), libraries' chatter (Orbax, TFDS) at WARNING only; TensorFlow kept off accelerators.
    Call it after ``jax.distributed`` is initialised."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("multimodal_jax").setLevel(
        logging.INFO if jax.process_index() == 0 else logging.WARNING)
    datasets.hide_accelerators_from_tf()


def fail(message: str, code: int = BAD_INPUT) -> None:
    """Ends the process with ``error: message`` (one paragraph) on stderr."""
    print("error: " + " ".join(message.split()), file=sys.stderr, flush=True)
    sys.exit(code)


class ListParser(tuple_parser.TupleParser):
    """``--config.FIELD=`` of a tuple field as users write lists: ``a,b,c`` or a Python literal
    (``fields.parse_list``); a repeated flag adds its items. (ml_collections' own parser keeps
    ``a,b`` as one item and refuses ``red circle,blue square``.)"""

    def parse(self, argument):
        return fields.parse_list(argument) if isinstance(argument, str) else super().parse(argument)


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's flag parsing (pass it to ``app.run(main, flags_parser=...)``), and the config file
    loaded right away, with one-paragraph errors and exit code 2 instead of absl's usage dump
    or a traceback. Tuple fields are read by ``ListParser`` (registered through ml_collections'
    own hook for a field type)."""
    config_flags.register_flag_parser_for_type(tuple, ListParser())
    try:
        rest = flag_values(argv)
        for flag in _config_flags(flag_values):
            _ = flag.value.keys  # a config that failed to load raises its error on any access
        return rest
    except flags.Error as error:
        fail(f"{str(error).rstrip('.')}. Run with --helpfull to list the flags.")
    except Exception as error:  # noqa: BLE001 - loading a user's config file or an override
        fail(_describe_config_error(error, argv))
    return []


def _config_flags(flag_values: flags.FlagValues) -> list:
    """The config-file flags given on the command line (``--config``)."""
    return [flag_values[name] for name in flag_values
            if type(flag_values[name]).__name__ == "_ConfigFlag" and flag_values[name].present]


def _config_path(argv: Sequence[str]) -> str | None:
    """The ``--config`` file named on the command line (the last one given)."""
    paths = [a.split("=", 1)[1] if a.startswith("--config=") else argv[i + 1]
             for i, a in enumerate(argv)
             if a.startswith("--config=") or (a == "--config" and i + 1 < len(argv))]
    return paths[-1] if paths else None


def _innermost(error: BaseException) -> BaseException:
    """The original error under config_flags' re-raises (``from``, or wrapped as an argument)."""
    while True:
        if error.args and isinstance(error.args[0], BaseException):
            error = error.args[0]
        elif error.__cause__ is not None:
            error = error.__cause__
        else:
            return error


def _describe_config_error(error: BaseException, argv: Sequence[str]) -> str:
    """A ``--config.FIELD=`` override of no field, a missing config file, or one that fails."""
    inner = _innermost(error)
    text = inner.args[0] if inner.args and isinstance(inner.args[0], str) else str(inner)
    if isinstance(inner, KeyError):  # config_flags: "'field'\nDid you mean ...?"
        field, _, hint = text.partition("\n")
        field = field.strip("'\"")
        overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        override = next((o for o in overrides if o.split(".")[-1] == field), f"--config...{field}")
        return (f"{override}: the config has no field {field!r}. {hint} Overrides can only set "
                "fields that the config file defines.")
    path = _config_path(argv)
    if path and not os.path.exists(path.split(":")[0]):
        return f"The config file --config={path} does not exist."
    if isinstance(inner, AttributeError) and "get_config" in text:
        return (f"The config file {_config_path(argv) or ''} defines no get_config() function "
                "returning the config.")
    where = _config_file_line(inner)
    if where:
        return f"The config file {where[0]} failed at line {where[1]}: {type(inner).__name__}: {text}"
    return f"The config could not be loaded: {type(inner).__name__}: {text}"


def _config_file_line(error: BaseException):
    """(file, line) of the deepest traceback frame (or syntax error) in a user's config file."""
    if isinstance(error, SyntaxError) and error.filename:
        return error.filename, error.lineno
    library = (os.path.sep + "ml_collections" + os.path.sep, os.path.sep + "absl" + os.path.sep)
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not any(part in f.filename for part in library) and not f.filename.startswith("<")
              and f.filename != __file__]
    return (frames[-1].filename, frames[-1].lineno) if frames else None


def run_or_exit(fn: Callable):
    """Runs ``fn``; a bad config or input ends the process with its message and code 2, a
    halted non-finite run with 3, an unrestorable workdir with 1; none prints a traceback."""
    try:
        return fn()
    except (ConfigError, FileNotFoundError) as error:
        fail(str(error), BAD_INPUT)
    except NonFiniteError as error:
        fail(str(error), NON_FINITE)
    except CheckpointError as error:
        fail(str(error), FAILED)
    return None


def print_metrics(metrics: dict) -> None:
    """Prints every metric as one JSON object, the last line of standard output."""
    values = {k: (float(v) if isinstance(v, (float, np.floating, np.ndarray)) else v)
              for k, v in sorted(metrics.items())}
    print(json.dumps(values), flush=True)


def _flag_value(argv: Sequence[str], name: str) -> Optional[str]:
    """The value of ``--name=V`` / ``--name V`` on the command line (the last one given)."""
    values = [a.split("=", 1)[1] if a.startswith(f"--{name}=") else argv[i + 1]
              for i, a in enumerate(argv)
              if a.startswith(f"--{name}=") or (a == f"--{name}" and i + 1 < len(argv))]
    return values[-1] if values else None


def recorded_config_file() -> str:
    """The path of ``configs/recorded.py`` (installed as ``multimodal_jax.configs``)."""
    from multimodal_jax.configs import recorded  # noqa: PLC0415 - configs import the runtime

    return recorded.__file__


def with_recorded_config(argv: Sequence[str]) -> list[str]:
    """``argv``, with ``--config=configs/recorded.py:WORKDIR`` added when it names a
    ``--workdir`` but no ``--config``: the run's recorded config (``WORKDIR/config.json``),
    which ``--config.FIELD=VALUE`` overrides then change. Without a record: a clear error."""
    argv = list(argv)
    workdir = _flag_value(argv, "workdir")
    if workdir is None or _flag_value(argv, "config") is not None:
        return argv
    try:
        run_record.read(workdir)
    except run_record.RecordError as error:
        fail(f"No --config given, and {error}")
    return argv[:1] + [f"--config={recorded_config_file()}:{workdir}"] + argv[1:]
