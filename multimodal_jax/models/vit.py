"""Vision Transformer image encoder (Dosovitskiy et al. 2021), variants by string like "B/16".

``ViT(variant="B/16")`` or explicit ``width/depth/mlp_dim/num_heads/patch_size``. Pooling is
the class token ("tok"), global average ("gap"), multihead attention pooling ("map") or none;
position embeddings are learned or 2-D sin-cos. ``apply`` returns a dict with ``tokens``
(``[B, N, D]``), ``pooled`` (``[B, D]``) and, with ``num_classes``, ``logits``.
"""

from typing import Any
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from multimodal_jax import fields
from multimodal_jax.models import layers
from multimodal_jax.models import posemb

# name: (width, depth, mlp_dim, num_heads), the standard sizes of ViT / big_vision.
VARIANTS = {
    "mu": (32, 1, 128, 2),  # for tests
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
    "g": (1408, 40, 6144, 16),
    "G": (1664, 48, 8192, 16),
}
POOLS = ("tok", "gap", "map", "none")
POSEMBS = ("learn", "sincos2d")
SIZE_FIELDS = ("width", "depth", "mlp_dim", "num_heads", "patch_size")


def parse_variant(variant: str) -> dict[str, int]:
    """``"B/16"`` -> ``{"width": 768, "depth": 12, "mlp_dim": 3072, "num_heads": 12, "patch_size": 16}``."""
    name, _, patch = variant.partition("/")
    if name not in VARIANTS or (patch and not patch.isdigit()):
        raise ValueError(f"Unknown ViT variant {variant!r}: use NAME or NAME/PATCH with NAME one of "
                         f"{list(VARIANTS)} and PATCH an integer, e.g. 'B/16'.")
    width, depth, mlp_dim, num_heads = VARIANTS[name]
    out = dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads)
    if patch:
        out["patch_size"] = int(patch)
    return out


def resolve_sizes(variant: Optional[str], explicit: dict, pool: str, posemb_kind: str,
                  where: str = "ViT") -> dict[str, int]:
    """The width, depth, mlp_dim, num_heads and patch_size of ``variant`` with the ``explicit``
    ones (not None) overriding it, checked: all given, positive integers, heads dividing the
    width; ``pool`` and ``posemb_kind`` known. ``where`` names the fields in errors."""
    try:
        sizes = parse_variant(variant) if variant else {}
    except ValueError as error:
        raise ValueError(f"{where}.variant: {error}") from None
    sizes.update({k: v for k, v in explicit.items() if v is not None})
    missing = [f for f in SIZE_FIELDS if f not in sizes]
    if missing:
        raise ValueError(f"{where} needs {missing}: give a variant like 'B/16' or set them.")
    for name in SIZE_FIELDS:
        if not (fields.is_int(sizes[name]) and sizes[name] > 0):
            raise ValueError(f"{where}.{name} must be a positive integer, got {sizes[name]!r}.")
    layers.check_heads(sizes["width"], sizes["num_heads"], where)
    if pool not in POOLS:
        raise ValueError(f"{where}.pool={pool!r}; choose one of {POOLS}.")
    if posemb_kind not in POSEMBS:
        raise ValueError(f"{where}.posemb={posemb_kind!r}; choose one of {POSEMBS}.")
    return sizes


def check_image_size(size: int, patch: int, what: str = "the image size") -> None:
    """``ValueError`` unless ``patch`` tiles ``size`` (an image side)."""
    if size % patch:
        raise ValueError(f"{what}={size} is not divisible by the patch size {patch}: use an image "
                         f"size that is a multiple of {patch} (e.g. {size // patch * patch or patch}).")


class ViT(nn.Module):
    """ViT encoder; explicit size fields override those of ``variant``."""

    variant: Optional[str] = None
    width: Optional[int] = None
    depth: Optional[int] = None
    mlp_dim: Optional[int] = None
    num_heads: Optional[int] = None
    patch_size: Optional[int] = None
    pool: str = "tok"
    posemb: str = "learn"
    patch_bias: bool = True
    pre_norm: bool = False  # CLIP's ln_pre after the embeddings
    final_norm: bool = True
    act: str = "gelu"
    ln_eps: float = 1e-6
    num_classes: Optional[int] = None
    head_zero_init: bool = True
    remat_policy: Optional[str] = None
    attention_impl: str = "flax"  # or "xla" / "cudnn" (jax.nn.dot_product_attention), layers.py
    dtype: Any = jnp.float32

    def size(self) -> dict[str, int]:
        """The resolved width, depth, mlp_dim, num_heads and patch_size."""
        return resolve_sizes(self.variant, {f: getattr(self, f) for f in SIZE_FIELDS},
                             self.pool, self.posemb)

    @nn.compact
    def __call__(self, images):
        s = self.size()
        patch = s["patch_size"]
        _, height, width, _ = images.shape
        check_image_size(height, patch, "the image height")
        check_image_size(width, patch, "the image width")
        x = nn.Conv(s["width"], (patch, patch), strides=(patch, patch), padding="VALID",
                    use_bias=self.patch_bias, dtype=self.dtype, name="embedding")(images)
        batch, gh, gw, dim = x.shape
        x = x.reshape(batch, gh * gw, dim)
        if self.posemb == "sincos2d":
            x = posemb.add_sincos_2d(x, (gh, gw))
        if self.pool == "tok":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, dim))
            x = jnp.concatenate([jnp.tile(cls, (batch, 1, 1)).astype(x.dtype), x], axis=1)
        if self.posemb == "learn":
            x = posemb.LearnedPosEmb(stddev=1 / dim ** 0.5, name="posemb")(x)
        if self.pre_norm:
            x = nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="ln_pre")(x)
        x = layers.Encoder(s["depth"], s["num_heads"], s["mlp_dim"], act=self.act,
                           ln_eps=self.ln_eps, final_norm=self.final_norm,
                           remat_policy=self.remat_policy, attention_impl=self.attention_impl,
                           dtype=self.dtype, name="encoder")(x)
        out = {"tokens": x, "pooled": self._pool(x, s)}
        if self.num_classes:
            init = nn.initializers.zeros if self.head_zero_init else nn.initializers.lecun_normal()
            out["logits"] = nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype,
                                     name="head")(out["pooled"])
        return out

    def _pool(self, x, s):
        if self.pool == "tok":
            return x[:, 0]
        if self.pool == "gap":
            return jnp.mean(x, axis=1)
        if self.pool == "map":
            return layers.MAPHead(s["num_heads"], s["mlp_dim"], act=self.act, ln_eps=self.ln_eps,
                                  attention_impl=self.attention_impl, dtype=self.dtype,
                                  name="map_head")(x)
        return x
