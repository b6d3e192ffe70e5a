"""Writes metrics to ``metrics.jsonl`` and TensorBoard event files, and pictures as PNG.

Only process 0 writes; the others get a writer that does nothing, so callers need no checks.
In a bucket workdir (``gs://...``) the event files are written by TensorFlow into a local
staging folder and copied whole into ``WORKDIR/tensorboard/`` through ``paths.py`` at each
flush (TensorFlow's own GCS client re-uploads a growing file whole too), so every file of the
run goes through the one path layer and its backend (``tf.io.gfile`` or ``gcsfs``).
"""

import json
import os
import tempfile
from typing import Any
from typing import Mapping

import jax
import numpy as np

from multimodal_jax import paths
from multimodal_jax import workdir as workdir_lib


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl`` and logs scalars
    and images to TensorBoard under ``workdir/tensorboard``."""

    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.path = os.path.join(workdir, workdir_lib.METRICS)
        self.events = os.path.join(workdir, workdir_lib.TENSORBOARD)
        self._tb = self._staging = None
        if self.enabled:
            import tensorflow as tf  # noqa: PLC0415 - TensorFlow only where something is written
            self._tf = tf
            if paths.is_url(workdir):
                self._staging = tempfile.TemporaryDirectory(prefix="mmjax-tensorboard-")
            self._tb = tf.summary.create_file_writer(self._staging.name if self._staging else self.events)

    def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        values = {k: float(np.asarray(v)) for k, v in metrics.items()}
        paths.append_text(self.path, json.dumps({"step": int(step), **values}) + "\n")
        with self._tb.as_default(step=int(step)):
            for name, value in values.items():
                self._tf.summary.scalar(name, value)
        self._flush()

    def image(self, step: int, name: str, png_path: str) -> None:
        """Logs a PNG file already written (to disk or a bucket) to TensorBoard too."""
        if not self.enabled:
            return
        image = self._tf.io.decode_png(paths.as_path(png_path).read_bytes(), channels=3)[None]
        with self._tb.as_default(step=int(step)):
            self._tf.summary.image(name, image)
        self._flush()

    def _flush(self) -> None:
        """Flushes the event file; from a staging folder, copies it whole into the workdir."""
        self._tb.flush()
        if self._staging is None:
            return
        paths.copy_local_tree(self._staging.name, self.events)
