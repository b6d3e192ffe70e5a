"""A user's image files as the model's input: folders, globs and paths expanded in a stable
order, each file decoded and preprocessed exactly as evaluation preprocesses the dataset's
images (``pipeline.eval_image``), and every file that cannot be read listed with the reason
instead of ending the run.

TensorFlow decodes PNG, JPEG, GIF (first frame) and BMP; other formats Pillow opens (WebP,
TIFF, ...) are converted to RGB by Pillow first. Images of any size and mode (grey, RGBA,
palette, 16-bit) come out as float32 ``[image_size, image_size, 3]`` in the config's
normalisation.
"""

import dataclasses
import glob
import io
import os
from typing import Iterable
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image
from PIL import UnidentifiedImageError

from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline

EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
GLOB_CHARACTERS = "*?["


@dataclasses.dataclass
class Images:
    """Preprocessed images (``pixels[i]`` is ``names[i]``) and the files that were skipped."""

    pixels: np.ndarray
    names: list
    unreadable: list  # (name, reason)


def expand(items: Iterable[str]) -> list[str]:
    """Files named by ``items``: a folder gives its image files (recursively, sorted by path), a
    glob its matches (sorted), a path itself (checked when read). Duplicates are kept once."""
    out: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = [os.path.join(root, name) for root, _, names in os.walk(item) for name in names
                     if name.lower().endswith(EXTENSIONS)]
            out += sorted(found)
        elif any(c in item for c in GLOB_CHARACTERS) and not os.path.exists(item):
            out += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            out.append(item)
    return list(dict.fromkeys(out))


def _pillow_rgb(data: bytes) -> np.ndarray:
    """Pixels of an image only Pillow reads, as uint8 RGB ``[H, W, 3]``."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class Preprocessor:
    """``pipeline.eval_image`` for one data config, traced once for encoded files."""

    def __init__(self, data_cfg):
        self.data_cfg = data_cfg
        datasets.hide_accelerators_from_tf()
        self._encoded = tf.function(lambda data: pipeline.eval_image(data, data_cfg),
                                    input_signature=[tf.TensorSpec([], tf.string)])

    @property
    def image_size(self) -> int:
        return int(datasets.field(self.data_cfg, "image_size"))

    def encoded(self, data: bytes) -> np.ndarray:
        """Encoded image bytes -> preprocessed float32 pixels (TensorFlow, else Pillow)."""
        try:
            return self._encoded(tf.constant(data)).numpy()
        except tf.errors.InvalidArgumentError:
            return self.pixels(_pillow_rgb(data))

    def pixels(self, image) -> np.ndarray:
        """uint8 pixels ``[H, W]``, ``[H, W, 1 | 3 | 4]`` -> preprocessed float32 pixels."""
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"images given as arrays must be uint8 pixels, got {image.dtype}; "
                             "pass file paths, or uint8 [H, W, 3] arrays")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"an image array must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
                             f"got shape {image.shape}")
        image = image[..., :3] if image.shape[-1] == 4 else image
        return pipeline.eval_image(tf.constant(image), self.data_cfg).numpy()

    def files(self, paths: Sequence[str]) -> Images:
        """Each readable file of ``paths`` preprocessed; the others listed with their reason."""
        pixels, names, unreadable = [], [], []
        for path in paths:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                pixels.append(self.encoded(data))
                names.append(path)
            except (OSError, UnidentifiedImageError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                unreadable.append((path, " ".join(str(reason).split())[:200] or type(error).__name__))
        size = self.image_size
        stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.float32)
        return Images(stacked, names, unreadable)
