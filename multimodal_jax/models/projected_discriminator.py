"""A discriminator that judges images through a frozen contrastive image tower (Projected GAN,
StyleGAN-T's and GALIP's frozen-encoder discriminators): light trainable heads on the tower's
token features at several depths, each conditioned on the caption by projection.

The heads see features, not pixels: the caller runs the frozen tower (``FrozenClip.
image_features``) and passes its token maps ``[B, N, width]``, one per chosen depth, so the
tower's params stay outside this module (never trained) while G's gradient flows through it.
Head ``i``: two dense layers per token, then ``score_t = v . h_t + b + <embed(c), h_t>`` per
token ``t``, averaged over tokens; D's score is the sum over heads. ``spectral_norm=True``
wraps the heads' dense layers as ``gan.Discriminator`` wraps its convolutions (vectors in
``batch_stats``).
"""

from typing import Any
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from multimodal_jax.models import gan

Dtype = Any


def act(x):
    return nn.leaky_relu(x, gan.SLOPE)


class FeatureHead(nn.Module):
    """Scores one depth's tokens ``[B, N, D]`` against conditions: ``(scores, [mismatched])``."""

    width: int = 64
    num_classes: int = 0
    spectral_norm: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens, c, mismatched_c=None, update_stats: bool = False):
        layer = gan.layer_fn(self.spectral_norm, update_stats)
        h = nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype)(tokens)
        h = act(layer(nn.Dense(self.width, dtype=self.dtype, name="dense_0"), h))
        h = act(layer(nn.Dense(self.width, dtype=self.dtype, name="dense_1"), h))
        h = h.astype(jnp.float32)
        out = layer(nn.Dense(1, name="out"), h)[..., 0]  # [B, N]
        embed = gan.ConditionEmbedding(self.width, self.num_classes, jnp.float32, name="projection")
        project = lambda cond: jnp.einsum("bd,bnd->bn", embed(cond), h)  # noqa: E731
        scores = jnp.mean(out + project(c), axis=1)
        if mismatched_c is None:
            return scores, None
        return scores, jnp.mean(out + project(mismatched_c), axis=1)


class ProjectedDiscriminator(nn.Module):
    """``D(features, c)`` -> scores ``[B]`` (and scores against ``mismatched_c``), the same
    contract as ``gan.Discriminator`` with the frozen tower's token maps in place of pixels."""

    num_features: int  # token maps it takes: one head each
    width: int = 64
    num_classes: int = 0
    spectral_norm: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: Sequence, c, mismatched_c=None, update_stats: bool = False):
        if len(features) != self.num_features:
            raise ValueError(f"The projected discriminator has {self.num_features} heads, got "
                             f"{len(features)} feature maps.")
        scores, mismatched = 0.0, 0.0
        for i, tokens in enumerate(features):
            s, m = FeatureHead(self.width, self.num_classes, self.spectral_norm, self.dtype,
                               name=f"head_{i}")(tokens, c, mismatched_c, update_stats)
            scores, mismatched = scores + s, (mismatched + m if m is not None else None)
        if mismatched_c is None:
            return scores
        return scores, mismatched
