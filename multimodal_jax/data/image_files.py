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


def _as_rgb(image) -> np.ndarray:
    """uint8 pixels ``[H, W]``, ``[H, W, 1 | 3 | 4]`` -> uint8 ``[H, W, 3]`` (alpha dropped)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images given as arrays must be uint8 pixels, got {image.dtype}; pass "
                         "file paths, or uint8 [H, W, 3] arrays")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"an image array must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got "
                         f"shape {image.shape}")
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return image[..., :3]


class Preprocessor:
    """``pipeline.eval_image`` for one data config, through the evaluation stream's own map
    (``pipeline.map_eval_images``)."""

    def __init__(self, data_cfg):
        self.data_cfg = data_cfg
        datasets.hide_accelerators_from_tf()

    @property
    def image_size(self) -> int:
        return int(datasets.field(self.data_cfg, "image_size"))

    def _mapped(self, items: list, spec: tf.TensorSpec) -> dict[int, np.ndarray]:
        """``{i: pixels}`` of the ``items`` (encoded bytes, or uint8 RGB arrays) that decode."""
        if not items:
            return {}
        ds = tf.data.Dataset.from_generator(lambda: enumerate(items), output_signature=(
            tf.TensorSpec([], tf.int64), spec))
        return {int(i): x for i, x in pipeline.map_eval_images(ds, self.data_cfg).as_numpy_iterator()}

    def pixels(self, images: Sequence) -> np.ndarray:
        """uint8 pixel arrays (any size; grey, RGB or RGBA) -> float32 ``[N, S, S, 3]``."""
        rgb = [_as_rgb(image) for image in images]
        out = self._mapped(rgb, tf.TensorSpec([None, None, 3], tf.uint8))
        return self._stack([out[i] for i in range(len(rgb))])

    def _stack(self, pixels: list) -> np.ndarray:
        size = self.image_size
        return np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.float32)

    def files(self, paths: Sequence[str]) -> Images:
        """Each readable file of ``paths`` preprocessed; the others listed with their reason.
        TensorFlow decodes what it can; the rest goes through Pillow (other formats) or is
        listed as unreadable."""
        data, unreadable = {}, {}
        for i, path in enumerate(paths):
            try:
                with open(path, "rb") as f:
                    data[i] = f.read()
            except OSError as error:
                unreadable[i] = error.strerror or type(error).__name__
        keys = sorted(data)
        decoded = self._mapped([data[k] for k in keys], tf.TensorSpec([], tf.string))
        decoded = {keys[j]: x for j, x in decoded.items()}
        others = [k for k in keys if k not in decoded]
        rgb = {}
        for k in others:
            try:
                rgb[k] = _pillow_rgb(data[k])
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                unreadable[k] = " ".join(f"not an image this package can decode ({error})".split())[:200]
        if rgb:
            decoded.update(zip(rgb, self.pixels(list(rgb.values()))))
        order = sorted(decoded)
        return Images(self._stack([decoded[k] for k in order]), [paths[k] for k in order],
                      [(paths[k], unreadable[k]) for k in sorted(unreadable)])
