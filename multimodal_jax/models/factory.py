"""Builds models from ml_collections configs, so that configs stay plain data, and checks
those config blocks (``config.model.*``) with the modules' own checks before anything is built.
"""

import dataclasses
import math
from typing import Optional

import jax.numpy as jnp
import ml_collections

from multimodal_jax import fields
from multimodal_jax.models import decoder as decoder_lib
from multimodal_jax.models import layers
from multimodal_jax.models import text as text_lib
from multimodal_jax.models import vit as vit_lib
from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# Module fields the factory (or the tokenizer) fills in itself, never a config.
SET_BY_FACTORY = ("vocab_size", "pad_id", "eos_id", "dtype", "parent", "name")


def check_dtype(name: str, where: str = "config.model.dtype") -> None:
    """``ValueError`` unless ``name`` is a compute dtype of ``DTYPES``."""
    if name not in DTYPES:
        raise ValueError(f"{where}={name!r}; choose one of {sorted(DTYPES)}.")


def compute_dtype(name: str):
    """``"bfloat16"`` -> ``jnp.bfloat16`` (``check_dtype`` has checked the name)."""
    return DTYPES[name]


def config_fields(module_class) -> list[str]:
    """The fields of a Flax module that a config block may set."""
    return [f.name for f in dataclasses.fields(module_class) if f.name not in SET_BY_FACTORY]


def check_image_block(image: ml_collections.ConfigDict, image_size,
                      where: str = "config.model.image") -> None:
    """A ViT block (``build_vit``'s): known fields, sizes that resolve, and an image size the
    patches tile."""
    fields.check_known(image, config_fields(ViT), where)
    if not (fields.is_int(image_size) and image_size > 0):
        raise ValueError(f"config.data.image_size must be a positive integer, got {image_size!r}.")
    if not image.get("variant") and not image.get("patch_size"):
        raise ValueError(f"{where} needs a patch_size (or a variant like 'B/16').")
    sizes = vit_lib.resolve_sizes(image.get("variant"),
                                  {f: image.get(f) for f in vit_lib.SIZE_FIELDS},
                                  image.get("pool", "tok"), image.get("posemb", "learn"), where)
    vit_lib.check_image_size(image_size, sizes["patch_size"], "config.data.image_size")
    layers.check_attention_impl(image.get("attention_impl", "flax"), f"{where}.attention_impl")


def check_sequence_block(block: ml_collections.ConfigDict, module_class, max_tokens: Optional[int],
                         where: str) -> None:
    """A text tower or decoder block: known fields, positive sizes, heads dividing the width,
    and tokens (``config.tokenizer.max_len``) no longer than its position table."""
    fields.check_known(block, config_fields(module_class), where)
    fields.check_positive_ints(block, ("width", "depth", "mlp_dim", "num_heads"), where)
    defaults = {f.name: f.default for f in dataclasses.fields(module_class)}
    width, heads = block.get("width") or defaults["width"], block.get("num_heads") or defaults["num_heads"]
    layers.check_heads(width, heads, where)
    limit = block.get("max_len") or defaults["max_len"]
    if max_tokens is not None and max_tokens > limit:
        raise ValueError(f"config.tokenizer.max_len={max_tokens} is longer than {where}.max_len="
                         f"{limit} (the model's position table): make them equal.")


def check_text_block(block: ml_collections.ConfigDict, max_tokens: Optional[int],
                     where: str = "config.model.text") -> None:
    """A text tower block (``build_text``'s)."""
    check_sequence_block(block, TextTransformer, max_tokens, where)
    text_lib.check_pool(block.get("pool", "eos"), where)
    layers.check_attention_impl(block.get("attention_impl", "flax"), f"{where}.attention_impl")


def check_decoder_block(block: ml_collections.ConfigDict, max_tokens: Optional[int],
                        where: str = "config.model.decoder") -> None:
    """A caption decoder block (``decoder.TextDecoder``'s fields)."""
    check_sequence_block(block, decoder_lib.TextDecoder, max_tokens, where)


def check_two_tower_block(model: ml_collections.ConfigDict, where: str = "config.model") -> None:
    """The two-tower fields: without an image projection (``project_image=False``, SigLIP) the
    image tower's pooled width is the embedding width."""
    if model.get("project_image", True) or "image" not in model:
        return
    image = model.image
    width = vit_lib.resolve_sizes(image.get("variant"), {f: image.get(f) for f in vit_lib.SIZE_FIELDS},
                                  image.get("pool", "tok"), image.get("posemb", "learn"),
                                  f"{where}.image")["width"]
    if model.get("embed_dim") != width:
        raise ValueError(f"{where}.project_image=False makes the image tower's pooled features the "
                         f"embedding, so {where}.embed_dim={model.get('embed_dim')!r} must equal "
                         f"{where}.image.width={width}: set them equal, or project_image=True.")


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
        project_image=model.get("project_image", True),
        logit_scale_init=math.log(10.0) if sigmoid else math.log(1 / 0.07),
        logit_bias_init=-10.0 if sigmoid else None,
        dtype=compute_dtype(model.dtype))
