"""Two-tower image-text model (CLIP / SigLIP): towers, projections and a learned temperature.

``TwoTower(image_tower=ViT(...), text_tower=TextTransformer(...), embed_dim=512)``. Called with
``images`` and/or ``tokens`` it returns L2-normalised ``image_embedding`` / ``text_embedding``
(``[B, embed_dim]``) and, with both, ``logits = exp(t) * img @ txt.T + b`` (``[B_img, B_txt]``).
The bias ``b`` exists only with ``logit_bias_init`` set (the sigmoid loss). With
``project_image=False`` the image tower's pooled features are the embedding (SigLIP: its MAP
head is the last layer, and ``embed_dim`` is the image width).
"""

import math
from typing import Any
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


def l2_normalize(x, eps: float = 1e-12):
    """``x / ||x||`` along the last axis, in float32."""
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


class TwoTower(nn.Module):
    """Image tower + text tower mapped into one embedding space."""

    image_tower: nn.Module
    text_tower: nn.Module
    embed_dim: int = 512
    proj_bias: bool = False
    project_image: bool = True  # False: no img_proj (SigLIP), embed_dim == the image width
    logit_scale_init: float = math.log(1 / 0.07)  # CLIP; SigLIP uses log(10)
    logit_bias_init: Optional[float] = None  # SigLIP uses -10
    dtype: Any = jnp.float32

    def setup(self):
        if self.project_image:
            self.img_proj = nn.Dense(self.embed_dim, use_bias=self.proj_bias, dtype=self.dtype,
                                     kernel_init=nn.initializers.lecun_normal(), name="img_proj")
        self.txt_proj = nn.Dense(self.embed_dim, use_bias=self.proj_bias, dtype=self.dtype,
                                 kernel_init=nn.initializers.lecun_normal(), name="txt_proj")
        self.logit_scale = self.param("logit_scale", nn.initializers.constant(self.logit_scale_init), ())
        if self.logit_bias_init is not None:
            self.logit_bias = self.param("logit_bias", nn.initializers.constant(self.logit_bias_init), ())

    def encode_image(self, images):
        """Normalised image embeddings ``[B, embed_dim]``."""
        pooled = self.image_tower(images)["pooled"]
        return l2_normalize(self.img_proj(pooled) if self.project_image else pooled)

    def encode_text(self, tokens):
        """Normalised text embeddings ``[B, embed_dim]``."""
        return l2_normalize(self.txt_proj(self.text_tower(tokens)["pooled"]))

    def __call__(self, images=None, tokens=None):
        out = {"logit_scale": jnp.exp(self.logit_scale)}
        if self.logit_bias_init is not None:
            out["logit_bias"] = self.logit_bias
        if images is not None:
            out["image_embedding"] = self.encode_image(images)
        if tokens is not None:
            out["text_embedding"] = self.encode_text(tokens)
        if images is not None and tokens is not None:
            out["logits"] = similarity_logits(out["image_embedding"], out["text_embedding"],
                                              out["logit_scale"], out.get("logit_bias"))
        return out


def similarity_logits(image_emb, text_emb, scale, bias=None):
    """``scale * image_emb @ text_emb.T (+ bias)``, in float32 at full matmul precision."""
    logits = scale * jnp.matmul(image_emb, text_emb.T, precision=jax.lax.Precision.HIGHEST)
    return logits if bias is None else logits + bias
