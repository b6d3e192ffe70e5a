"""Transformer building blocks shared by the image and text towers.

Pre-LayerNorm blocks (``x + attn(ln(x))``, ``x + mlp(ln(x))``) with the activation, the
LayerNorm epsilon and the compute dtype as explicit fields, so that published CLIP / ViT
weights (quick_gelu or exact GELU, eps 1e-5 or 1e-12) load with exact parity.
"""

from typing import Any
from typing import Callable
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * nn.sigmoid(1.702 * x),
    "relu": nn.relu,
    "silu": nn.silu,
}

def check_heads(width: int, num_heads: int, where: str) -> None:
    """``ValueError`` unless ``width`` splits evenly into ``num_heads`` heads."""
    if width % num_heads:
        closest = min((d for d in range(1, width + 1) if width % d == 0),
                      key=lambda d: abs(d - num_heads))
        raise ValueError(f"{where}.width={width} is not divisible by num_heads={num_heads}: each "
                         f"head gets width / num_heads channels; choose e.g. num_heads={closest}.")


# How attention is computed: "flax" (Flax's dot_product_attention, what every measured figure
# used), or through jax.nn.dot_product_attention: "xla" (any backend) or "cudnn" (flash
# attention on NVIDIA GPUs, bfloat16 / float16).
ATTENTION_IMPLS = ("flax", "xla", "cudnn")
# Flax's attention, instrumented for explanations (evaluation/explain.py), never a config's
# choice: each attention's weights and each encoder's input tokens are sown into
# "intermediates" and pass through a zero "perturbations" variable, whose gradient is theirs.
EXPLAIN = "explain"


def check_attention_impl(impl: str, where: str = "attention_impl") -> None:
    """``impl`` is one of ``ATTENTION_IMPLS``."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"{where}={impl!r}; choose one of {ATTENTION_IMPLS}.")


def recorded(module: nn.Module, name: str, value):
    """``value`` sown into ``intermediates`` and perturbed (``perturbations``) under ``name``."""
    value = module.perturb(name, value)
    module.sow("intermediates", name, value)
    return value


def _explained_attention(query, key, value, bias=None, mask=None, *, dtype=None, module=None,
                         **_):
    """Flax's dot-product attention with its weights ``recorded`` as ``"attention"``."""
    weights = nn.dot_product_attention_weights(query, key, bias, mask, dtype=dtype)
    if module is not None:
        weights = recorded(module, "attention", weights)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value)


def attention_fn(impl: str = "flax") -> Callable:
    """The ``attention_fn`` of ``nn.MultiHeadDotProductAttention`` for ``impl``."""
    if impl == EXPLAIN:
        return _explained_attention
    check_attention_impl(impl)
    if impl == "flax":
        return nn.dot_product_attention

    def attend(query, key, value, bias=None, mask=None, *, dtype=None, **_):
        mask = None if mask is None else mask.astype(bool)  # Flax's masks are float 0 / 1
        out = jax.nn.dot_product_attention(query, key, value, bias=bias, mask=mask,
                                           implementation=impl)
        return out.astype(dtype or query.dtype)
    return attend


REMAT_POLICIES = {
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function called ``name``, with a clear error if unknown."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class MlpBlock(nn.Module):
    """Two dense layers with an activation between them (the transformer feed-forward)."""

    mlp_dim: int
    act: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        dense = lambda n, name: nn.Dense(  # noqa: E731
            n, dtype=self.dtype, kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.normal(stddev=1e-6), name=name)
        x = dense(self.mlp_dim, "fc1")(x)
        x = get_activation(self.act)(x)
        return dense(width, "fc2")(x)


class EncoderBlock(nn.Module):
    """One pre-LayerNorm transformer block: self-attention then MLP, both residual."""

    num_heads: int
    mlp_dim: int
    act: str = "gelu"
    ln_eps: float = 1e-6
    attention_impl: str = "flax"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask: Optional[jax.Array] = None):
        y = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln_1")(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(), deterministic=True, name="attn",
            attention_fn=attention_fn(self.attention_impl),
        )(y, y, mask=mask, sow_weights=self.attention_impl == EXPLAIN)
        x = x + y
        y = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln_2")(x)
        y = MlpBlock(self.mlp_dim, act=self.act, dtype=self.dtype, name="mlp")(y)
        return x + y


class Encoder(nn.Module):
    """A stack of ``depth`` encoder blocks, optionally rematerialised, then a final LayerNorm."""

    depth: int
    num_heads: int
    mlp_dim: int
    act: str = "gelu"
    ln_eps: float = 1e-6
    final_norm: bool = True
    remat_policy: Optional[str] = None
    attention_impl: str = "flax"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask: Optional[jax.Array] = None):
        if self.attention_impl == EXPLAIN:
            x = recorded(self, "tokens", x)
        block_cls = EncoderBlock
        if self.remat_policy is not None:
            if self.remat_policy not in REMAT_POLICIES:
                raise ValueError(f"Unknown remat_policy {self.remat_policy!r}; choose one of "
                                 f"{sorted(REMAT_POLICIES)} or None.")
            block_cls = nn.remat(EncoderBlock, policy=REMAT_POLICIES[self.remat_policy])
        for i in range(self.depth):
            x = block_cls(self.num_heads, self.mlp_dim, act=self.act, ln_eps=self.ln_eps,
                          attention_impl=self.attention_impl, dtype=self.dtype,
                          name=f"block_{i}")(x, mask)
        if self.final_norm:
            x = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln_final")(x)
        return x


class MAPHead(nn.Module):
    """Multihead attention pooling: a learned probe attends over the tokens (big_vision's MAP)."""

    num_heads: int
    mlp_dim: Optional[int] = None
    act: str = "gelu"
    ln_eps: float = 1e-6
    attention_impl: str = "flax"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask: Optional[jax.Array] = None):
        batch, _, width = x.shape
        probe = self.param("probe", nn.initializers.xavier_uniform(), (1, 1, width))
        probe = jnp.tile(probe, (batch, 1, 1)).astype(x.dtype)
        attn_mask = None if mask is None else mask[:, None, None, :]
        x = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(), deterministic=True, name="attn",
            attention_fn=attention_fn(self.attention_impl),
        )(probe, x, mask=attn_mask, sow_weights=self.attention_impl == EXPLAIN)
        y = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln")(x)
        x = x + MlpBlock(self.mlp_dim or 4 * width, act=self.act, dtype=self.dtype, name="mlp")(y)
        return x[:, 0]
