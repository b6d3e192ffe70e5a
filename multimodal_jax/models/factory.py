"""Builds models from ml_collections configs, so that configs stay plain data."""

import math

import jax.numpy as jnp
import ml_collections

from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(name: str):
    """``"bfloat16"`` -> ``jnp.bfloat16``, with a clear error for unknown names."""
    if name not in DTYPES:
        raise ValueError(f"Unknown compute dtype {name!r}; choose one of {sorted(DTYPES)}.")
    return DTYPES[name]


def build_vit(image: ml_collections.ConfigDict, dtype: str = "float32", **overrides) -> ViT:
    """A ``ViT`` from a config block of its fields (e.g. ``variant="B/16", pool="map"``)."""
    return ViT(**{**image.to_dict(), **overrides}, dtype=compute_dtype(dtype))


def build_text(text: ml_collections.ConfigDict, vocab_size: int, pad_id: int, eos_id: int,
               dtype: str = "float32") -> TextTransformer:
    """A ``TextTransformer`` whose vocabulary and special ids come from the tokenizer."""
    return TextTransformer(vocab_size=vocab_size, pad_id=pad_id, eos_id=eos_id,
                           **text.to_dict(), dtype=compute_dtype(dtype))


def build_two_tower(model: ml_collections.ConfigDict, loss: str, vocab_size: int, pad_id: int,
                    eos_id: int) -> TwoTower:
    """CLIP (``loss="softmax"``) or SigLIP (``"sigmoid"``) two-tower model from a config."""
    sigmoid = loss == "sigmoid"
    return TwoTower(
        image_tower=build_vit(model.image, model.dtype),
        text_tower=build_text(model.text, vocab_size, pad_id, eos_id, model.dtype),
        embed_dim=model.embed_dim,
        proj_bias=model.get("proj_bias", False),
        logit_scale_init=math.log(10.0) if sigmoid else math.log(1 / 0.07),
        logit_bias_init=-10.0 if sigmoid else None,
        dtype=compute_dtype(model.dtype))
