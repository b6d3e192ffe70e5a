"""Position embeddings: learned, or fixed 2-D sine-cosine (MoCo v3 / big_vision style)."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def sincos_2d(height: int, width: int, dim: int, temperature: float = 10_000.0) -> np.ndarray:
    """Fixed 2-D sin-cos embedding of a ``height x width`` grid, shape ``[1, h*w, dim]``."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embeddings need a width divisible by 4, got {dim}.")
    y, x = np.mgrid[:height, :width]
    omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4 - 1 or 1))
    y = y.reshape(-1)[:, None] * omega[None]
    x = x.reshape(-1)[:, None] * omega[None]
    emb = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return emb[None].astype(np.float32)


class LearnedPosEmb(nn.Module):
    """A learned ``[1, length, width]`` table added to the tokens."""

    stddev: float = 0.02

    @nn.compact
    def __call__(self, x):
        table = self.param("pos_embedding", nn.initializers.normal(stddev=self.stddev),
                           (1,) + x.shape[1:])
        return x + table.astype(x.dtype)


def add_sincos_2d(x, grid_hw: tuple[int, int]):
    """Adds the fixed 2-D sin-cos embedding to patch tokens ``x`` of shape ``[B, h*w, D]``."""
    return x + jnp.asarray(sincos_2d(*grid_hw, x.shape[-1]), x.dtype)
