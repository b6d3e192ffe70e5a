"""One image file of a user's, made ready to store in a dataset: fully decoded once to prove it
readable, then kept byte for byte when it is a JPEG (greyscale or RGB) or an 8-bit PNG, which
the pipeline's decoder (``tf.io.decode_image``) and every other reader take as they are.
Anything else is re-encoded: other formats and modes (TIFF, WebP, BMP, GIF, 16-bit PNG, CMYK
JPEG, ...) losslessly as PNG, an EXIF rotation (decoders ignore it) applied, and a resize only
when asked for. Images of any size are kept at their size otherwise.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

# Formats and modes stored as they are (tf.io.decode_image(channels=3) reads them as RGB).
KEPT = {"JPEG": {"L", "RGB"}, "PNG": {"1", "L", "LA", "RGB", "RGBA", "P"}}
_ORIENTATION = 0x0112  # the EXIF tag; 1 = upright


class UnreadableImage(ValueError):
    """A file PIL cannot decode completely: not an image, truncated, or too large to open."""


def decoded(data: bytes) -> Image.Image:
    """The image, decoded to its last pixel (a truncated file fails here, not in training)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except UnidentifiedImageError:
        raise UnreadableImage("not an image file PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as error:
        raise UnreadableImage(f"{type(error).__name__}: {error}") from None
    if image.width < 1 or image.height < 1:
        raise UnreadableImage(f"empty image ({image.width}x{image.height})")
    return image


def prepared(data: bytes, resize: int | None = None) -> tuple[bytes, str]:
    """``(bytes to store, why they were re-encoded or "")``. ``resize``: scale down so that
    the shorter side is ``resize`` pixels (never up). Raises ``UnreadableImage``."""
    image = decoded(data)
    reasons = []
    if image.format not in KEPT or image.mode not in KEPT[image.format]:
        reasons.append(f"re-encoded from {image.format} {image.mode}")
    orientation = image.getexif().get(_ORIENTATION, 1)
    if orientation != 1:
        reasons.append(f"turned upright (EXIF orientation {orientation})")
    if resize and min(image.size) > resize:
        reasons.append(f"resized from {image.width}x{image.height}")
    if not reasons:
        return data, ""
    return _reencoded(image, resize), "; ".join(reasons)


def _reencoded(image: Image.Image, resize: int | None) -> bytes:
    """RGB (or greyscale) pixels upright and resized, as JPEG (quality 95) if they were JPEG,
    else as PNG (lossless)."""
    source_format = image.format
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith(("I", "F")):  # 16-bit / 32-bit greyscale: scaled to 8 bits
        pixels = np.asarray(image.convert("F"), np.float64)
        top = 65535.0 if pixels.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(pixels * 255.0 / top), 0, 255).astype(np.uint8))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # alpha dropped, as the decoder drops it from kept PNGs
    if resize and min(image.size) > resize:
        scale = resize / min(image.size)
        size = (max(resize, round(image.width * scale)), max(resize, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if source_format == "JPEG":
        image.save(out, format="JPEG", quality=95)
    else:
        image.save(out, format="PNG")
    return out.getvalue()
