"""What the command-line entry points share: process setup, clear exits, the metrics line."""

import json
import logging
import sys
from typing import Callable

import numpy as np
from absl import logging as absl_logging

from multimodal_jax.config_checks import ConfigError
from multimodal_jax.data import pipeline


def setup_process() -> None:
    """Our progress at INFO on stderr, libraries' chatter (Orbax, TFDS) at WARNING only;
    TensorFlow kept off accelerators."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("multimodal_jax").setLevel(logging.INFO)
    pipeline.hide_accelerators_from_tf()


def run_or_exit(fn: Callable):
    """Runs ``fn``; a bad config or input ends the process with its message and code 2."""
    try:
        return fn()
    except (ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def print_metrics(metrics: dict) -> None:
    """Prints every metric as one JSON object, the last line of standard output."""
    values = {k: (float(v) if isinstance(v, (float, np.floating, np.ndarray)) else v)
              for k, v in sorted(metrics.items())}
    print(json.dumps(values), flush=True)
