"""Pure-numpy rendering of simple coloured shapes into small RGB images.

Each shape is a signed distance function (in pixels) evaluated on a coordinate grid,
so one image is a handful of vectorised array ops; coverage = clip(0.5 - distance)
gives one-pixel anti-aliasing. Sizes and placements scale with the image size.
"""

from typing import Callable
from typing import Dict
from typing import Sequence
from typing import Tuple

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent")
COLORS = ("red", "green", "blue", "yellow", "cyan", "magenta", "orange", "white")
SIZES = ("small", "large")
POSITIONS = ("centre", "left", "right", "top", "bottom")
RELATIONS = ("none", "left of", "right of", "above", "below")

COLOR_RGB: Dict[str, Tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (40, 190, 50),
    "blue": (40, 80, 235),
    "yellow": (240, 225, 30),
    "cyan": (30, 215, 225),
    "magenta": (215, 40, 215),
    "orange": (250, 135, 10),
    "white": (240, 240, 240),
}
# Object "radius" (centre to farthest extent) as a fraction of the image side:
# ~6.4 px (small) and ~10.2 px (large) at 32 px.
SIZE_RADIUS = {"small": 0.2, "large": 0.32}
_MARGIN = 0.03  # gap to the image border, fraction of the side
_COLOR_JITTER = 12  # per-channel uniform jitter of an object's colour


def _box(x: np.ndarray, y: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned box of half-sizes (hx, hy)."""
    return np.maximum(np.abs(x) - hx, np.abs(y) - hy)


def _circle(x, y, r):
    """A disc."""
    return np.hypot(x, y) - 0.95 * r


def _square(x, y, r):
    """An axis-aligned square (small rotations come from the caller)."""
    return _box(x, y, 0.72 * r, 0.72 * r)


def _triangle(x, y, r):
    """Upward equilateral triangle, its bounding box centred on the origin."""
    r = 1.1 * r  # circumradius; a triangle looks small next to a disc of equal extent
    y = 0.25 * r - y  # y up, origin at the centroid; the bbox is then centred
    c = np.sqrt(3.0) / 2.0
    edges = (-y, c * x + 0.5 * y, -c * x + 0.5 * y)
    return np.maximum.reduce(edges) - 0.5 * r


def _diamond(x, y, r):
    """A rhombus, taller than wide, so it never looks like a rotated square."""
    hx, hy = 0.75 * r, r
    return (np.abs(x) / hx + np.abs(y) / hy - 1.0) * (hx * hy / np.hypot(hx, hy))


def _star(x, y, r, points: int = 5, inner: float = 0.48):
    """A five-pointed star (tip up): distance to the tip/inner-vertex edge in a folded wedge."""
    sector = 2.0 * np.pi / points
    phi = np.mod(np.arctan2(x, -y), sector)
    phi = np.minimum(phi, sector - phi)
    rho = np.hypot(x, y)
    qx, qy = rho * np.cos(phi), rho * np.sin(phi)
    tx, ty = r, 0.0
    vx, vy = inner * r * np.cos(sector / 2), inner * r * np.sin(sector / 2)
    ex, ey = vx - tx, vy - ty
    # Positive outside: the origin lies on the negative side of the edge T->V.
    return (ey * (qx - tx) - ex * (qy - ty)) / np.hypot(ex, ey)


def _cross(x, y, r):
    """A plus sign: two crossing bars."""
    return np.minimum(_box(x, y, 0.9 * r, 0.3 * r), _box(x, y, 0.3 * r, 0.9 * r))


def _ring(x, y, r):
    """An annulus with a hole wide enough to see at 32 px."""
    return np.abs(np.hypot(x, y) - 0.68 * r) - 0.3 * r


def _crescent(x, y, r):
    """A disc with a bite taken from its right side."""
    outer = np.hypot(x, y) - 0.95 * r
    bite = np.hypot(x - 0.45 * r, y + 0.1 * r) - 0.72 * r
    return np.maximum(outer, -bite)


SHAPE_SDF: Dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "diamond": _diamond,
    "star": _star,
    "cross": _cross,
    "ring": _ring,
    "crescent": _crescent,
}


def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of ``shape`` centred at 0, image y down."""
    if shape not in SHAPE_SDF:
        raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")
    return SHAPE_SDF[shape](x, y, radius)


def object_rgb(rng: np.random.Generator, color: str) -> np.ndarray:
    """The base RGB of ``color`` with a small per-channel jitter (float32 in [0, 255])."""
    base = np.asarray(COLOR_RGB[color], np.float32)
    jitter = rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, size=3).astype(np.float32)
    return np.clip(base + jitter, 0, 255)


def plain_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat dark-grey background (float32 [size, size, 3])."""
    level = rng.uniform(0.0, 35.0)
    return np.full((size, size, 3), level, np.float32)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-contrast background: dark grey, faint oriented stripes and pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.12, 0.3) * size
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
    level = rng.uniform(20.0, 50.0) + rng.uniform(4.0, 10.0) * stripes
    tint = rng.uniform(-6.0, 6.0, size=3).astype(np.float32)
    noise = rng.normal(0.0, 4.0, size=(size, size, 3)).astype(np.float32)
    return np.clip(level[..., None] + tint + noise, 0, 255).astype(np.float32)


def object_alpha(shape: str, size_yx: Tuple[int, int], center: Tuple[float, float], radius: float,
                 angle: float = 0.0, antialias: bool = True) -> np.ndarray:
    """Coverage in [0, 1] (float32 [H, W]) of one shape: center is (x, y) in pixels, radius the
    centre-to-extent distance in pixels and angle a rotation in radians."""
    yy, xx = np.mgrid[0:size_yx[0], 0:size_yx[1]].astype(np.float32)
    dx, dy = xx + 0.5 - center[0], yy + 0.5 - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy
    dist = shape_sdf(shape, x, y, radius)
    return np.clip(0.5 - dist, 0.0, 1.0) if antialias else (dist <= 0).astype(np.float32)


def draw_object(
    canvas: np.ndarray,
    shape: str,
    rgb: np.ndarray,
    center: Tuple[float, float],
    radius: float,
    angle: float = 0.0,
    antialias: bool = True,
) -> np.ndarray:
    """Returns ``canvas`` (float32 [S,S,3]) with one shape alpha-composited on top
    (``object_alpha``'s arguments)."""
    alpha = object_alpha(shape, canvas.shape[:2], center, radius, angle, antialias)[..., None]
    return canvas * (1.0 - alpha) + rgb * alpha


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """Rounds a float canvas to a uint8 RGB image."""
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def single_center(
    rng: np.random.Generator, size: int, radius: float, position: str
) -> Tuple[float, float]:
    """Centre (x, y) in pixels of a lone object at ``position``, jittered, inside the image."""
    reach = max(size / 2 - radius - _MARGIN * size, 0.0)  # largest offset from the middle
    along = rng.uniform(0.75, 1.0) * reach
    across = rng.uniform(-0.25, 0.25) * reach
    offsets = {
        "centre": (rng.uniform(-0.2, 0.2) * reach, rng.uniform(-0.2, 0.2) * reach),
        "left": (-along, across),
        "right": (along, across),
        "top": (across, -along),
        "bottom": (across, along),
    }
    if position not in offsets:
        raise ValueError(f"Unknown position {position!r}; expected one of {POSITIONS}.")
    ox, oy = offsets[position]
    return size / 2 + ox, size / 2 + oy


def pair_centers(
    rng: np.random.Generator, size: int, radius: float, relation: str
) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Centres of objects 1 and 2 such that "object 1 <relation> object 2" holds, no overlap.

    Each object sits in its own half of the image, jittered within the room left.
    """
    half = size / 2
    slack = max(half / 2 - radius - _MARGIN * size, 0.0)  # room around a half's middle
    near = half / 2 + rng.uniform(-slack, slack)  # in the first half
    far = size - half / 2 - rng.uniform(-slack, slack)  # in the second half
    if relation in ("left of", "above"):
        first, second = near, far
    elif relation in ("right of", "below"):
        first, second = far, near
    else:
        raise ValueError(f"Unknown relation {relation!r}; expected one of {RELATIONS[1:]}.")
    spread = 0.5 * max(half - radius - _MARGIN * size, 0.0)  # offset across the relation axis
    c1, c2 = half + rng.uniform(-spread, spread, size=2)
    if relation in ("left of", "right of"):
        return (first, c1), (second, c2)
    return (c1, first), (c2, second)


def object_masks(size: int, objects: Sequence[dict], antialias: bool = True,
                 threshold: float = 0.5) -> np.ndarray:
    """bool [len(objects), size, size]: the pixels where each object (``render_scene``'s dicts,
    in drawing order) shows with more than ``threshold`` of its colour, after the objects drawn
    over it."""
    alphas = [object_alpha(o["shape"], (size, size), o["center"], o["radius"], o.get("angle", 0.0),
                           antialias) for o in objects]
    masks = []
    for i, alpha in enumerate(alphas):
        for above in alphas[i + 1:]:
            alpha = alpha * (1.0 - above)
        masks.append(alpha > threshold)
    return np.stack(masks) if masks else np.zeros((0, size, size), bool)


def render_scene(
    background: np.ndarray, objects: Sequence[dict], antialias: bool = True
) -> np.ndarray:
    """Draws objects (dicts: shape, rgb, center, radius, angle) on a background -> uint8."""
    canvas = background
    for obj in objects:
        canvas = draw_object(
            canvas, obj["shape"], obj["rgb"], obj["center"], obj["radius"],
            obj.get("angle", 0.0), antialias,
        )
    return to_uint8(canvas)
