"""Hugging Face ``SiglipModel`` and ``Siglip2Model`` checkpoints -> a ``TwoTower`` and its variables.

``model, variables = load_hf_siglip("path/to/siglip-base-patch16-224")`` reads ``config.json`` and
``model.safetensors`` as ``save_pretrained`` writes them; ``model.apply(variables, images=NHWC,
tokens=input_ids)`` then gives SigLIP's embeddings and ``logits = exp(t) * img @ txt.T + b``
(the sigmoid loss's bias included), as ``logits_per_image``.

SigLIP's towers in our modules: a ViT with a patch bias, learned positions and no class token,
LayerNorm on every output token (``post_layernorm``) and the MAP head, whose output is the image
embedding (no projection: ``project_image=False``); a bidirectional text Transformer that attends
to every position (pads included: the model was trained on texts padded to ``max_len`` with its
end-of-text id) and pools the last position into a linear head with a bias (``txt_proj``).

``Siglip2Model`` (NaFlex in transformers) is read at one fixed resolution, as transformers runs it
on a square image of whole patches: its linear patch embedding becomes the ViT's patch
convolution, and its position table, resized by transformers for each image's patch grid, is
resized once here for ``image_size`` (by default the table's own grid, where it is unchanged).
"""

import os
from typing import Optional

import jax.numpy as jnp
import numpy as np

from multimodal_jax.models import vit as vit_lib
from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import hf_clip
from multimodal_jax.pretrained import tree_mapping as tm
from multimodal_jax.pretrained import weights_files

MODEL_TYPES = ("siglip", "siglip2")
# Defaults of transformers' SigLIP configs (older versions write only non-default values).
TEXT_DEFAULTS = dict(vocab_size=32000, hidden_size=768, intermediate_size=3072,
                     num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=64,
                     hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, pad_token_id=1,
                     eos_token_id=49407, projection_size=None)
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, num_channels=3, patch_size=16,
                       hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=True)
IMAGE_SIZE_DEFAULT = 224  # SiglipVisionConfig.image_size
NUM_PATCHES_DEFAULT = 256  # Siglip2VisionConfig.num_patches
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)  # SigLIP's pixel normalisation: [-1, 1]

IGNORED_KEYS = (r"position_ids$",)


def load_hf_siglip(path: str, dtype=jnp.float32, image_size: Optional[int] = None):
    """``(TwoTower, {"params": ...})`` for the Hugging Face SigLIP or SigLIP 2 folder ``path``.

    ``dtype`` is the compute dtype; parameters are float32. ``image_size`` (SigLIP 2 only; a
    SigLIP checkpoint has its own) fixes the resolution: the position table is resized to its
    patch grid as transformers resizes it.
    """
    config = weights_files.read_json(os.path.join(path, "config.json"))
    kind = model_type(config, path)
    text, vision = siglip_configs(config)
    native = native_image_size(vision, kind)
    if image_size is not None and kind == "siglip" and int(image_size) != native:
        raise ValueError(f"image_size={image_size}: a SigLIP checkpoint is read at its own size "
                         f"({native}); only SigLIP 2 tables are resized here (init_from resizes "
                         "position tables for fine-tuning at another size).")
    size = int(image_size or native)
    vit_lib.check_image_size(size, tm.square(vision["patch_size"], "patch size"), "image_size")
    checkpoint = weights_files.read_checkpoint(path)
    fields = model_fields(text, vision)
    model = siglip_model(fields, text, _scalar(checkpoint, "logit_scale", np.log(10.0)),
                         _scalar(checkpoint, "logit_bias", -10.0), dtype)
    shapes = tm.param_shapes(model, images=np.zeros((1, size, size, vision["num_channels"]), np.float32),
                             tokens=np.zeros((1, text["max_position_embeddings"]), np.int32))
    patch = fields["image"]["patch_size"]
    rules = siglip_rules(kind, text["num_hidden_layers"], vision["num_hidden_layers"],
                         text["num_attention_heads"], vision["num_attention_heads"], patch,
                         vision["num_channels"], size // patch, native // patch)
    params = tm.build_params(rules, checkpoint, shapes, ignore=IGNORED_KEYS,
                             what=f"checkpoint {path!r}")
    return model, {"params": params}


def model_type(config: dict, path: str) -> str:
    """``"siglip"`` or ``"siglip2"``, else a ValueError naming what the folder holds."""
    kind = config.get("model_type", "siglip")
    if kind not in MODEL_TYPES:
        raise ValueError(f"{path!r} holds a {kind!r} model, not one of {MODEL_TYPES}. For CLIP "
                         "use multimodal_jax.pretrained.load_hf_clip, for ViT load_hf_vit.")
    return kind


def siglip_configs(config: dict) -> tuple[dict, dict]:
    """(text, vision) configs of a SigLIP ``config.json``, with transformers' defaults."""
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or {})}
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or {})}
    if text["projection_size"] is None:
        text["projection_size"] = text["hidden_size"]
    if not vision["vision_use_head"]:
        raise ValueError("This SigLIP has vision_use_head=False: its image tower has no MAP head, "
                         "so the model has no image embedding (transformers' SiglipModel cannot "
                         "run it either).")
    if text["projection_size"] != vision["hidden_size"]:
        raise ValueError(f"text projection_size={text['projection_size']} differs from the vision "
                         f"width {vision['hidden_size']}: SigLIP's image embedding is the MAP "
                         "head's output, so they must be equal.")
    return text, vision


def native_image_size(vision: dict, kind: str) -> int:
    """The image side the checkpoint's position table fits: SigLIP's ``image_size``, or the
    side of SigLIP 2's ``num_patches`` grid in pixels."""
    patch = tm.square(vision["patch_size"], "patch size")
    if kind == "siglip":
        return tm.square(vision.get("image_size", IMAGE_SIZE_DEFAULT), "image size")
    patches = int(vision.get("num_patches", NUM_PATCHES_DEFAULT))
    side = int(round(patches ** 0.5))
    if side * side != patches:
        raise ValueError(f"num_patches={patches} is not a square grid.")
    return side * patch


def model_fields(text: dict, vision: dict) -> dict:
    """The ``config.model`` fields of a SigLIP architecture (see the module docstring)."""
    image = dict(
        width=vision["hidden_size"], depth=vision["num_hidden_layers"],
        mlp_dim=vision["intermediate_size"], num_heads=vision["num_attention_heads"],
        patch_size=tm.square(vision["patch_size"], "patch size"), pool="map", posemb="learn",
        patch_bias=True, pre_norm=False, final_norm=True,
        act=tm.hf_activation(vision["hidden_act"]), ln_eps=vision["layer_norm_eps"])
    text_fields = dict(
        width=text["hidden_size"], depth=text["num_hidden_layers"],
        mlp_dim=text["intermediate_size"], num_heads=text["num_attention_heads"],
        max_len=text["max_position_embeddings"], causal=False, mask_pad=False, pool="last",
        act=tm.hf_activation(text["hidden_act"]), ln_eps=text["layer_norm_eps"])
    return dict(image=image, text=text_fields, embed_dim=text["projection_size"], proj_bias=True,
                project_image=False)


def siglip_model(fields: dict, text: dict, logit_scale: float, logit_bias: float,
                 dtype=jnp.float32) -> TwoTower:
    """The ``TwoTower`` of ``model_fields`` (with the checkpoint's temperature and bias as the
    initial values, so that ``init`` alone gives them too)."""
    pad_id = 0 if text["pad_token_id"] is None else int(text["pad_token_id"])
    return TwoTower(image_tower=ViT(**fields["image"], dtype=dtype),
                    text_tower=TextTransformer(vocab_size=text["vocab_size"], pad_id=pad_id,
                                               eos_id=_eos_id(text), **fields["text"],
                                               dtype=dtype),
                    embed_dim=fields["embed_dim"], proj_bias=True, project_image=False,
                    logit_scale_init=logit_scale, logit_bias_init=logit_bias, dtype=dtype)


def _scalar(checkpoint: dict, key: str, default: float) -> float:
    return float(np.asarray(checkpoint[key]).reshape(())) if key in checkpoint else float(default)


def config_blocks(path: str, image_size: Optional[int] = None) -> dict:
    """What a contrastive config needs to run the SigLIP folder ``path`` (with
    ``init_from="hf_siglip:PATH"``, ``init_towers="all"`` and ``loss="sigmoid"``): ``model``
    fields, the ``tokenizer`` block (the folder's ``spiece.model``, SigLIP's canonicalising
    SentencePiece tokenizer) and the image size and normalisation it was trained with
    (``preprocessor_config.json``, else SigLIP's [-1, 1])."""
    config = weights_files.read_json(os.path.join(path, "config.json"))
    kind = model_type(config, path)
    text, vision = siglip_configs(config)
    processor = os.path.join(path, "preprocessor_config.json")
    norm = weights_files.read_json(processor) if os.path.exists(processor) else {}
    return dict(
        model=dict(model_fields(text, vision), dtype="float32"),
        tokenizer=dict(kind="siglip", path=os.path.join(path, "spiece.model"),
                       vocab_size=text["vocab_size"], max_len=text["max_position_embeddings"]),
        image_size=int(image_size or native_image_size(vision, kind)),
        mean=tuple(norm.get("image_mean", SIGLIP_MEAN)), std=tuple(norm.get("image_std", SIGLIP_STD)))


# --- conversion rules ---------------------------------------------------------------------------

def linear_patch_kernel(patch: int, channels: int) -> tm.Transform:
    """SigLIP 2's ``Linear`` patch embedding ``[D, p*p*C]`` (patches flattened as (row, column,
    channel)) -> a Flax ``Conv`` kernel ``[p, p, C, D]``."""
    return tm.Transform(lambda w: w.T.reshape(patch, patch, channels, -1),
                        lambda k: k.reshape(-1, k.shape[-1]).T)


def resize_weights(source: int, target: int) -> np.ndarray:
    """``[target, source]`` interpolation weights of transformers' SigLIP 2 position resizing
    (a triangle filter, widened when shrinking: bilinear with antialiasing)."""
    scale = source / target
    support = max(scale, 1.0)
    center = (np.arange(target, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5
    taps = np.arange(source, dtype=np.float32)
    weights = np.clip(1 - np.abs(taps[None, :] - center[:, None]) / np.float32(support), 0, None)
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def resized_positions(side: int, grid: int) -> tm.Transform:
    """SigLIP 2's ``[side*side, D]`` position table -> ``[1, grid*grid, D]`` for a ``grid`` x
    ``grid`` patch image, as transformers resizes it (the table itself when ``grid == side``)."""
    if grid == side:
        return tm.add_leading_axes(1)
    rows = resize_weights(side, grid)
    weights = (rows[:, None, :, None] * rows[None, :, None, :]).reshape(grid * grid, side * side)

    def cannot_undo(_):
        raise ValueError(f"A SigLIP 2 position table resized from {side}x{side} to {grid}x{grid} "
                         "patches cannot be written back at the checkpoint's size.")
    return tm.Transform(lambda table: (weights @ table.astype(np.float32))[None], cannot_undo)


def siglip_rules(kind: str, text_depth: int, vision_depth: int, text_heads: int,
                 vision_heads: int, patch: int, channels: int, grid: int, side: int) -> list:
    """Conversion rules from HF ``SiglipModel`` / ``Siglip2Model`` names to the ``TwoTower`` tree."""
    txt, img = "text_model", "vision_model"
    if kind == "siglip":
        patch_rule = tm.Rule("image_tower/embedding/kernel",
                             f"{img}.embeddings.patch_embedding.weight", tm.conv_kernel)
        posemb = tm.add_leading_axes(1)
    else:
        patch_rule = tm.Rule("image_tower/embedding/kernel",
                             f"{img}.embeddings.patch_embedding.weight",
                             linear_patch_kernel(patch, channels))
        posemb = resized_positions(side, grid)
    head = "image_tower/map_head"
    return [
        tm.Rule("logit_scale", "logit_scale", tm.reshape_to(source_shape=(1,))),
        tm.Rule("logit_bias", "logit_bias", tm.reshape_to(source_shape=(1,))),
        *tm.dense_rules("txt_proj", f"{txt}.head"),
        tm.Rule("text_tower/embedding/embedding", f"{txt}.embeddings.token_embedding.weight"),
        tm.Rule("text_tower/posemb", f"{txt}.embeddings.position_embedding.weight",
                tm.add_leading_axes(1)),
        *hf_clip.encoder_rules("text_tower/encoder", f"{txt}.encoder", text_depth, text_heads),
        *tm.layer_norm_rules("text_tower/encoder/ln_final", f"{txt}.final_layer_norm"),
        patch_rule,
        tm.Rule("image_tower/embedding/bias", f"{img}.embeddings.patch_embedding.bias"),
        tm.Rule("image_tower/posemb/pos_embedding", f"{img}.embeddings.position_embedding.weight",
                posemb),
        *hf_clip.encoder_rules("image_tower/encoder", f"{img}.encoder", vision_depth, vision_heads),
        *tm.layer_norm_rules("image_tower/encoder/ln_final", f"{img}.post_layernorm"),
        tm.Rule(f"{head}/probe", f"{img}.head.probe"),
        *tm.fused_attention_rules(f"{head}/attn", f"{img}.head.attention", vision_heads),
        *tm.layer_norm_rules(f"{head}/ln", f"{img}.head.layernorm"),
        *tm.dense_rules(f"{head}/mlp/fc1", f"{img}.head.mlp.fc1"),
        *tm.dense_rules(f"{head}/mlp/fc2", f"{img}.head.mlp.fc2"),
    ]


def _eos_id(text: dict) -> int:
    eos_id = text["eos_token_id"]
    return int(eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id)
