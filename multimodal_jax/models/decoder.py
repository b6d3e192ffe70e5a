"""Autoregressive Transformer text decoder with cross-attention to image tokens, and a KV cache.

Each block is pre-LayerNorm: causal self-attention, cross-attention to ``memory`` (the image
tower's tokens), MLP, all residual. ``apply`` returns float32 logits ``[B, L, vocab_size]``.

Two ways to run it, same parameters:
- teacher forcing (training, scoring): ``decoder(tokens, memory)``, causal; rows with
  ``bidirectional=[B] bool`` True see every position (CapPa's parallel prediction, whose inputs
  are the mask token ``mask_id = vocab_size``, an extra embedding row);
- cached (decoding): ``decoder(tokens, memory, decode=True, index=i)`` with the mutable
  ``"cache"`` collection. The cache holds each block's self-attention keys / values for
  ``max_len`` positions and its projected image memory. The first call creates it (give
  ``memory``; later calls may pass ``memory=None``); each call writes its ``L`` tokens at
  positions ``i .. i + L - 1`` and attends causally over the cache, so one token per call
  decodes and a whole prefix per call scores.
"""

from typing import Any
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from multimodal_jax.models import layers


def _heads(num_heads: int, dtype, name: str):
    """A dense layer ``[..., D] -> [..., heads, D / heads]``."""
    return lambda width: nn.DenseGeneral((num_heads, width // num_heads), dtype=dtype,
                                         kernel_init=nn.initializers.xavier_uniform(), name=name)


def _merge_heads(width: int, dtype):
    return nn.DenseGeneral(width, axis=(-2, -1), dtype=dtype,
                           kernel_init=nn.initializers.xavier_uniform(), name="out")


class SelfAttention(nn.Module):
    """Multi-head self-attention; with ``decode`` its keys / values go to a ``cache_len``-position
    cache at ``index`` and the queries attend causally over the cache."""

    num_heads: int
    cache_len: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, mask=None, decode: bool = False, index=None):
        batch, length, width = x.shape
        q, k, v = (_heads(self.num_heads, self.dtype, n)(width)(x)
                   for n in ("query", "key", "value"))
        if decode:
            shape = (batch, self.cache_len) + k.shape[2:]
            cached_k = self.variable("cache", "cached_key", jnp.zeros, shape, k.dtype)
            cached_v = self.variable("cache", "cached_value", jnp.zeros, shape, v.dtype)
            at = (0, index, 0, 0)
            cached_k.value = k = jax.lax.dynamic_update_slice(cached_k.value, k, at)
            cached_v.value = v = jax.lax.dynamic_update_slice(cached_v.value, v, at)
            seen = jnp.arange(self.cache_len)[None, :] <= index + jnp.arange(length)[:, None]
            mask = seen[None, None]
        y = nn.dot_product_attention(q, k, v, mask=mask, dtype=self.dtype)
        return _merge_heads(width, self.dtype)(y)


class CrossAttention(nn.Module):
    """Multi-head attention from the text to ``memory``; with ``decode`` the memory's keys /
    values are computed on the first call and kept in the cache."""

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, memory, decode: bool = False):
        width = x.shape[-1]
        q = _heads(self.num_heads, self.dtype, "query")(width)(x)
        key, value = (_heads(self.num_heads, self.dtype, n)(width) for n in ("key", "value"))
        if decode:
            k = self.variable("cache", "memory_key", lambda: key(memory)).value
            v = self.variable("cache", "memory_value", lambda: value(memory)).value
        else:
            k, v = key(memory), value(memory)
        return _merge_heads(width, self.dtype)(nn.dot_product_attention(q, k, v, dtype=self.dtype))


class DecoderBlock(nn.Module):
    """Self-attention (cached when ``decode``), cross-attention to ``memory``, MLP."""

    num_heads: int
    mlp_dim: int
    cache_len: int
    act: str = "gelu"
    ln_eps: float = 1e-6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, memory, mask=None, decode: bool = False, index=None):
        def norm(name):
            return nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name=name)

        x = x + SelfAttention(self.num_heads, self.cache_len, self.dtype, name="self_attn")(
            norm("ln_1")(x), mask, decode, index)
        x = x + CrossAttention(self.num_heads, self.dtype, name="cross_attn")(
            norm("ln_2")(x), memory, decode)
        y = norm("ln_3")(x)
        return x + layers.MlpBlock(self.mlp_dim, act=self.act, dtype=self.dtype, name="mlp")(y)


class TextDecoder(nn.Module):
    """Token + position embeddings, ``depth`` decoder blocks, final LayerNorm, vocabulary head."""

    vocab_size: int
    width: int = 512
    depth: int = 6
    mlp_dim: Optional[int] = None
    num_heads: int = 8
    max_len: int = 64
    act: str = "gelu"
    ln_eps: float = 1e-6
    dtype: Any = jnp.float32

    @property
    def mask_id(self) -> int:
        """The input id of a masked position (parallel prediction): one past the vocabulary."""
        return self.vocab_size

    @nn.compact
    def __call__(self, tokens, memory, *, decode: bool = False, index=None, bidirectional=None):
        length = tokens.shape[1]
        if tokens.ndim != 2 or length > self.max_len:
            raise ValueError(f"Decoder tokens must be int [batch, length <= {self.max_len}], got "
                             f"shape {tokens.shape}; raise config.model.decoder.max_len.")
        if decode and index is None:
            raise ValueError("Cached decoding needs the position of its first token: index=i.")
        x = nn.Embed(self.vocab_size + 1, self.width, embedding_init=nn.initializers.normal(0.02),
                     dtype=self.dtype, name="embedding")(tokens)
        table = self.param("posemb", nn.initializers.normal(0.01), (1, self.max_len, self.width))
        if decode:
            table = jax.lax.dynamic_slice_in_dim(table, index, length, axis=1)
        x = x + table[:, :length].astype(x.dtype)
        mask = None if decode else self._mask(tokens, bidirectional)
        if memory is not None:
            memory = memory.astype(self.dtype)
        for i in range(self.depth):
            x = DecoderBlock(self.num_heads, self.mlp_dim or 4 * self.width, self.max_len,
                             act=self.act, ln_eps=self.ln_eps, dtype=self.dtype, name=f"block_{i}")(
                                 x, memory, mask, decode, index)
        x = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln_final")(x)
        logits = nn.Dense(self.vocab_size, dtype=self.dtype, kernel_init=nn.initializers.zeros,
                          name="head")(x)
        return logits.astype(jnp.float32)

    @staticmethod
    def _mask(tokens, bidirectional):
        """Causal ``[B|1, 1, L, L]``; rows with ``bidirectional`` True see every position."""
        causal = nn.make_causal_mask(tokens[:1])
        if bidirectional is None:
            return causal
        return jnp.logical_or(causal, bidirectional[:, None, None, None])
