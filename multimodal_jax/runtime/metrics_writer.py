"""Writes metrics to ``metrics.jsonl`` and TensorBoard event files, and pictures as PNG.

Only process 0 writes; the others get a writer that does nothing, so callers need no checks.
"""

import json
import os
from typing import Any
from typing import Mapping

import jax
import numpy as np


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl`` and logs scalars
    and images to TensorBoard under ``workdir/tensorboard``."""

    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.enabled:
            import tensorflow as tf  # noqa: PLC0415 - TensorFlow only where something is written
            self._tf = tf
            self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

    def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        values = {k: float(np.asarray(v)) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **values}) + "\n")
        with self._tb.as_default(step=int(step)):
            for name, value in values.items():
                self._tf.summary.scalar(name, value)
        self._tb.flush()

    def image(self, step: int, name: str, png_path: str) -> None:
        """Logs a PNG file already written to disk to TensorBoard too."""
        if not self.enabled:
            return
        with open(png_path, "rb") as f:
            image = self._tf.io.decode_png(f.read(), channels=3)[None]
        with self._tb.as_default(step=int(step)):
            self._tf.summary.image(name, image)
        self._tb.flush()
