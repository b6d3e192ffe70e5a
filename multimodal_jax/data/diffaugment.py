"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout, applied to
real and generated images alike before the discriminator, so D cannot overfit a small dataset
and G still gets gradients through the augmentation.

Images are NHWC in a [-1, 1]-like normalisation. Each example draws its own parameters: one
``uniform [B, 7]`` draw from ``rng`` feeds every op (one random-number kernel, however many
ops), and translation is a product with one-hot shift matrices (no gather / scatter), which
keeps the train step quick to compile.
"""

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")
_COLUMNS = {"color": slice(0, 3), "translation": slice(3, 5), "cutout": slice(5, 7)}


def check_policy(policy) -> None:
    unknown = [p for p in policy if p not in POLICIES]
    if unknown:
        raise ValueError(f"Unknown DiffAugment op(s) {unknown}; choose from {POLICIES}.")


def color(images, u):
    """Brightness +-0.5, saturation x0..2 and contrast x0.5..1.5; ``u`` uniform ``[B, 3]``."""
    u = u[:, :, None, None, None]
    x = images + (u[:, 0] - 0.5)
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (u[:, 1] * 2) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (u[:, 2] + 0.5) + mean


def _shift_matrix(u, size: int, max_shift: int):
    """One-hot ``[B, size, size]``: output row i reads input row ``i - d``, ``d`` drawn from
    ``-max_shift..max_shift`` by ``u`` (``[B]``); rows that fall outside read nothing (zero)."""
    d = jnp.floor(u * (2 * max_shift + 1)).astype(jnp.int32) - max_shift
    rows = jnp.arange(size)
    return (rows[None, None, :] == rows[None, :, None] - d[:, None, None]).astype(jnp.float32)


def translation(images, u, ratio: float = 0.125):
    """Shifts each image by up to ``ratio`` of its side in y and x (``u`` uniform ``[B, 2]``),
    filling with zeros."""
    _, h, w, _ = images.shape
    sy = _shift_matrix(u[:, 0], h, int(h * ratio + 0.5)).astype(images.dtype)
    sx = _shift_matrix(u[:, 1], w, int(w * ratio + 0.5)).astype(images.dtype)
    precision = jax.lax.Precision.HIGHEST  # exact copies of the pixels
    x = jnp.einsum("bij,bjwc->biwc", sy, images, precision=precision)
    return jnp.einsum("bkw,biwc->bikc", sx, x, precision=precision)


def cutout(images, u, ratio: float = 0.5):
    """Zeroes a square of side ``ratio`` of the image centred at a uniform place (clipped at
    the border); ``u`` uniform ``[B, 2]``."""
    _, h, w, _ = images.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = jnp.floor(u[:, 0] * (h + 1 - size_y % 2)).astype(jnp.int32)[:, None, None]
    cx = jnp.floor(u[:, 1] * (w + 1 - size_x % 2)).astype(jnp.int32)[:, None, None]
    ys, xs = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
    inside = ((ys >= cy - size_y // 2) & (ys < cy - size_y // 2 + size_y) &
              (xs >= cx - size_x // 2) & (xs < cx - size_x // 2 + size_x))
    return images * (1 - inside[..., None].astype(images.dtype))


def diff_augment(images, rng, policy=POLICIES):
    """The ops of ``policy`` in the order given, each example with its own parameters."""
    check_policy(policy)
    if not policy:
        return images
    u = jax.random.uniform(rng, (images.shape[0], 7))
    ops = {"color": color, "translation": translation, "cutout": cutout}
    for name in policy:
        images = ops[name](images, u[:, _COLUMNS[name]])
    return images
