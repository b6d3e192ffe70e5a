"""Transformer text encoder: token + position embeddings, causal or bidirectional attention.

Pools to one vector per text: at the end-of-text token ("eos", CLIP), at the highest token
id ("argmax", OpenAI CLIP's legacy rule), the first token ("first"), the mean of non-pad
tokens ("mean") or multihead attention pooling ("map"). ``apply`` returns a dict with
``tokens`` (``[B, L, D]``) and ``pooled`` (``[B, D]``).
"""

from typing import Any
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from multimodal_jax.models import layers

POOLS = ("eos", "argmax", "first", "last", "mean", "map")


def check_pool(pool: str, where: str = "TextTransformer") -> None:
    """``ValueError`` unless ``pool`` is one of ``POOLS``."""
    if pool not in POOLS:
        raise ValueError(f"{where}.pool={pool!r}; choose one of {POOLS}.")


class TextTransformer(nn.Module):
    """Text tower; tokens are int32 ``[batch, length]`` padded with ``pad_id``."""

    vocab_size: int
    width: int = 512
    depth: int = 12
    mlp_dim: Optional[int] = None
    num_heads: int = 8
    max_len: int = 77
    causal: bool = True
    mask_pad: bool = True  # bidirectional: hide pad tokens as keys; False attends to all (SigLIP)
    pool: str = "eos"
    pad_id: int = 0
    eos_id: int = 1
    act: str = "gelu"
    ln_eps: float = 1e-6
    remat_policy: Optional[str] = None
    attention_impl: str = "flax"  # or "xla" / "cudnn" (jax.nn.dot_product_attention), layers.py
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens):
        check_pool(self.pool)
        if tokens.ndim != 2 or tokens.shape[1] > self.max_len:
            raise ValueError(f"Tokens must be int [batch, length <= {self.max_len}], got shape "
                             f"{tokens.shape}.")
        x = nn.Embed(self.vocab_size, self.width, embedding_init=nn.initializers.normal(0.02),
                     dtype=self.dtype, name="embedding")(tokens)
        table = self.param("posemb", nn.initializers.normal(0.01), (1, self.max_len, self.width))
        x = x + table[:, : tokens.shape[1]].astype(x.dtype)
        x = layers.Encoder(self.depth, self.num_heads, self.mlp_dim or 4 * self.width,
                           act=self.act, ln_eps=self.ln_eps, remat_policy=self.remat_policy,
                           attention_impl=self.attention_impl, dtype=self.dtype,
                           name="encoder")(x, self._attention_mask(tokens))
        return {"tokens": x, "pooled": self._pool(x, tokens)}

    def _attention_mask(self, tokens):
        """Causal mask, or (bidirectional) a mask that hides pad tokens as keys, or none
        (``mask_pad=False``: SigLIP pads with its end-of-text id and attends to every position)."""
        if self.causal:
            return nn.make_causal_mask(tokens)
        if not self.mask_pad:
            return None
        return nn.make_attention_mask(jnp.ones_like(tokens, bool), tokens != self.pad_id)

    def _pool(self, x, tokens):
        batch = jnp.arange(x.shape[0])
        if self.pool == "eos":
            # First end-of-text token; the last position when a text has none (truncated).
            is_eos = tokens == self.eos_id
            idx = jnp.where(is_eos.any(axis=1), jnp.argmax(is_eos, axis=1), tokens.shape[1] - 1)
            return x[batch, idx]
        if self.pool == "argmax":
            return x[batch, jnp.argmax(tokens, axis=1)]
        if self.pool == "first":
            return x[:, 0]
        if self.pool == "last":
            return x[:, -1]
        valid = tokens != self.pad_id
        if self.pool == "mean":
            weights = valid[..., None].astype(x.dtype)
            return jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1)
        return layers.MAPHead(self.num_heads, act=self.act, ln_eps=self.ln_eps,
                              attention_impl=self.attention_impl, dtype=self.dtype,
                              name="map_head")(x, valid)
