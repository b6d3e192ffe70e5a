"""OpenAI CLIP / open_clip state dicts (``visual.proj``, fused ``in_proj_weight``) -> ``TwoTower``.

``model, variables = load_openai_clip("ViT-B-32.safetensors")`` infers the architecture from
the tensor shapes as OpenAI's ``build_model`` does (heads = width // 64 unless given) and
returns the matching two-tower model. Only ViT image towers with the standard text
transformer are supported (not the ModifiedResNet towers nor timm / HF text towers).
"""

import math
import os
import re

import jax.numpy as jnp

from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import tree_mapping as tm
from multimodal_jax.pretrained import weights_files

# Scalars OpenAI's JIT archives carry, and buffers some exports keep; none are parameters.
IGNORED_KEYS = (r"^(input_resolution|context_length|vocab_size)$", r"(^|\.)attn_mask$")
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "model.safetensors")


def load_openai_clip(path: str, *, act: str = "quick_gelu", vision_heads: int | None = None,
                     text_heads: int | None = None, text_pool: str = "argmax",
                     eos_id: int | None = None, pad_id: int = 0, ln_eps: float = 1e-5,
                     dtype=jnp.float32):
    """``(TwoTower, {"params": ...})`` for an OpenAI-style CLIP state dict (safetensors / npz), or
    a folder holding one (with ``open_clip_config.json``, whose activation and heads are used).

    ``act`` is ``"quick_gelu"`` for OpenAI's own weights and ``"gelu"`` for most open_clip
    models trained from scratch (those named ``*-quickgelu`` use quick_gelu). Heads default to
    width // 64. ``text_pool="argmax"`` pools at the highest token id (OpenAI's end-of-text
    rule); ``"eos"`` pools at the first ``eos_id`` (default: the last vocabulary id).
    """
    saved = open_clip_options(path)  # a folder with open_clip_config.json: its architecture
    act = saved.get("act", act)
    vision_heads, text_heads = vision_heads or saved.get("vision_heads"), text_heads or saved.get("text_heads")
    checkpoint = tm.strip_prefix(weights_files.read_checkpoint(_weights_file(path)), "module.")
    text_prefix = "text." if "text.token_embedding.weight" in checkpoint else ""
    dims = infer_dims(checkpoint, text_prefix)
    vision_heads = vision_heads or _default_heads(dims["vision_width"], "vision")
    text_heads = text_heads or _default_heads(dims["text_width"], "text")
    model = TwoTower(
        image_tower=ViT(width=dims["vision_width"], depth=dims["vision_depth"],
                        mlp_dim=dims["vision_mlp"], num_heads=vision_heads,
                        patch_size=dims["patch_size"], pool="tok", posemb="learn",
                        patch_bias=False, pre_norm=dims["pre_norm"], final_norm=True, act=act,
                        ln_eps=ln_eps, dtype=dtype),
        text_tower=TextTransformer(vocab_size=dims["vocab_size"], width=dims["text_width"],
                                   depth=dims["text_depth"], mlp_dim=dims["text_mlp"],
                                   num_heads=text_heads, max_len=dims["context_length"],
                                   causal=True, pool=text_pool, pad_id=pad_id,
                                   eos_id=dims["vocab_size"] - 1 if eos_id is None else eos_id,
                                   act=act, ln_eps=ln_eps, dtype=dtype),
        embed_dim=dims["embed_dim"], proj_bias=False,
        logit_scale_init=float(_need(checkpoint, "logit_scale").reshape(())),
        logit_bias_init=dims["logit_bias"], dtype=dtype)
    size = dims["patch_size"] * dims["grid"]
    shapes = tm.param_shapes(model, images=jnp.zeros((1, size, size, dims["channels"])),
                             tokens=jnp.zeros((1, dims["context_length"]), jnp.int32))
    rules = openai_rules(dims, vision_heads, text_heads, text_prefix)
    params = tm.build_params(rules, checkpoint, shapes, ignore=IGNORED_KEYS,
                             what=f"state dict {path!r}")
    return model, {"params": params}


def open_clip_options(path: str) -> dict:
    """``act``, ``vision_heads`` and ``text_heads`` from the ``open_clip_config.json`` of a
    folder (open_clip's hub layout, and ``open_clip_export``'s); none for a lone file."""
    config_path = os.path.join(path, "open_clip_config.json")
    if not (os.path.isdir(path) and os.path.exists(config_path)):
        return {}
    cfg = weights_files.read_json(config_path).get("model_cfg", {})
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    options = {"act": "quick_gelu" if cfg.get("quick_gelu") else "gelu"}
    if vision.get("width") and vision.get("head_width"):
        options["vision_heads"] = int(vision["width"]) // int(vision["head_width"])
    if text.get("heads"):
        options["text_heads"] = int(text["heads"])
    return options


def _weights_file(path: str) -> str:
    """``path`` itself, or the open_clip / HF weights file inside a directory."""
    if not os.path.isdir(path):
        return path
    for name in OPEN_CLIP_FILES:
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name)
    raise FileNotFoundError(f"No {' or '.join(OPEN_CLIP_FILES)} in directory {path!r}.")


def _default_heads(width: int, tower: str) -> int:
    if width % 64:
        raise ValueError(f"Cannot infer the {tower} tower's heads: width {width} is not a multiple "
                         f"of 64 (OpenAI's rule). Pass {tower}_heads= explicitly.")
    return width // 64


def _need(checkpoint: dict, key: str):
    if key not in checkpoint:
        hint = (" It looks like a ModifiedResNet image tower, which is not supported."
                if key.startswith("visual.") and any(k.startswith("visual.layer1.")
                                                     for k in checkpoint) else "")
        raise ValueError(f"Not an OpenAI/open_clip ViT CLIP state dict: missing {key!r}.{hint}")
    return checkpoint[key]


def _depth(checkpoint: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    layers = {int(m.group(1)) for k in checkpoint if (m := pattern.match(k))}
    return max(layers) + 1 if layers else 0


def infer_dims(checkpoint: dict, text_prefix: str = "") -> dict:
    """Architecture sizes read off the tensor shapes, as open_clip / OpenAI ``build_model`` do."""
    conv = _need(checkpoint, "visual.conv1.weight")
    positions = _need(checkpoint, "visual.positional_embedding").shape[0]
    grid = round(math.sqrt(positions - 1))
    if grid * grid + 1 != positions:
        raise ValueError(f"'visual.positional_embedding' has {positions} rows; expected a square "
                         "grid of patches plus one class token.")
    t = text_prefix
    return dict(
        vision_width=conv.shape[0], channels=conv.shape[1], patch_size=conv.shape[-1], grid=grid,
        vision_depth=_depth(checkpoint, "visual.transformer.resblocks."),
        vision_mlp=_need(checkpoint, "visual.transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        pre_norm="visual.ln_pre.weight" in checkpoint,
        embed_dim=_need(checkpoint, f"{t}text_projection").shape[1],
        vocab_size=_need(checkpoint, f"{t}token_embedding.weight").shape[0],
        text_width=_need(checkpoint, f"{t}ln_final.weight").shape[0],
        context_length=_need(checkpoint, f"{t}positional_embedding").shape[0],
        text_depth=_depth(checkpoint, f"{t}transformer.resblocks."),
        text_mlp=_need(checkpoint, f"{t}transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        logit_bias=(float(checkpoint["logit_bias"].reshape(()))
                    if "logit_bias" in checkpoint else None),
    )


def openai_rules(dims: dict, vision_heads: int, text_heads: int, text_prefix: str = "") -> list:
    """Conversion rules from OpenAI / open_clip names to the ``TwoTower`` tree."""
    t = text_prefix
    rules = [
        tm.Rule("logit_scale", "logit_scale", tm.reshape_to()),
        tm.Rule("img_proj/kernel", "visual.proj"),  # used as x @ proj: already [in, out]
        tm.Rule("txt_proj/kernel", f"{t}text_projection"),
        tm.Rule("image_tower/embedding/kernel", "visual.conv1.weight", tm.conv_kernel),
        tm.Rule("image_tower/cls", "visual.class_embedding", tm.add_leading_axes(2)),
        tm.Rule("image_tower/posemb/pos_embedding", "visual.positional_embedding",
                tm.add_leading_axes(1)),
        *resblock_rules("image_tower/encoder", "visual.transformer.resblocks",
                        dims["vision_depth"], vision_heads),
        *tm.layer_norm_rules("image_tower/encoder/ln_final", "visual.ln_post"),
        tm.Rule("text_tower/embedding/embedding", f"{t}token_embedding.weight"),
        tm.Rule("text_tower/posemb", f"{t}positional_embedding", tm.add_leading_axes(1)),
        *resblock_rules("text_tower/encoder", f"{t}transformer.resblocks",
                        dims["text_depth"], text_heads),
        *tm.layer_norm_rules("text_tower/encoder/ln_final", f"{t}ln_final"),
    ]
    if dims["pre_norm"]:
        rules += tm.layer_norm_rules("image_tower/ln_pre", "visual.ln_pre")
    if dims["logit_bias"] is not None:
        rules.append(tm.Rule("logit_bias", "logit_bias", tm.reshape_to()))
    return rules


def resblock_rules(target: str, source: str, depth: int, num_heads: int) -> list:
    """OpenAI ``ResidualAttentionBlock``s -> our ``Encoder`` blocks."""
    rules = []
    for i in range(depth):
        dst, src = f"{target}/block_{i}", f"{source}.{i}"
        rules += tm.layer_norm_rules(f"{dst}/ln_1", f"{src}.ln_1")
        rules += tm.fused_attention_rules(f"{dst}/attn", f"{src}.attn", num_heads)
        rules += tm.layer_norm_rules(f"{dst}/ln_2", f"{src}.ln_2")
        rules += tm.dense_rules(f"{dst}/mlp/fc1", f"{src}.mlp.c_fc")
        rules += tm.dense_rules(f"{dst}/mlp/fc2", f"{src}.mlp.c_proj")
    return rules
