"""Hugging Face ``CLIPModel`` checkpoints -> a multimodal_jax ``TwoTower`` and its variables.

``model, variables = load_hf_clip("path/to/clip-vit-base-patch32")`` reads ``config.json`` and
``model.safetensors`` as ``save_pretrained`` writes them; ``model.apply(variables, images=...,
tokens=...)`` then gives the same embeddings and logits as ``CLIPModel`` on the same
(already normalised, NHWC) pixels and ``input_ids``.
"""

import os

import jax.numpy as jnp
import numpy as np

from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import tree_mapping as tm
from multimodal_jax.pretrained import weights_files

# Defaults of transformers' CLIP configs (older versions write only non-default values).
TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                     num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                     hidden_act="quick_gelu", layer_norm_eps=1e-5, pad_token_id=1,
                     bos_token_id=49406, eos_token_id=49407)
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, num_channels=3, image_size=224, patch_size=32,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5)
CLIP_DEFAULTS = dict(projection_dim=512, logit_scale_init_value=2.6592)

IGNORED_KEYS = (r"position_ids$",)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's pixel normalisation
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def load_hf_clip(path: str, dtype=jnp.float32):
    """``(TwoTower, {"params": ...})`` for the Hugging Face CLIP checkpoint directory ``path``.

    ``dtype`` is the compute dtype of the returned model; parameters are float32.
    """
    config = weights_files.read_json(os.path.join(path, "config.json"))
    if config.get("model_type", "clip") != "clip":
        raise ValueError(f"{path!r} holds a {config.get('model_type')!r} model, not 'clip'. "
                         "For ViT checkpoints use multimodal_jax.pretrained.load_hf_vit.")
    text, vision, top = clip_configs(config)
    checkpoint = weights_files.read_checkpoint(path)
    if "logit_scale" in checkpoint:  # the learned value, not the config's initial one
        top["logit_scale_init_value"] = float(np.asarray(checkpoint["logit_scale"]).reshape(()))
    model = clip_model(text, vision, top, dtype)
    shapes = tm.param_shapes(model, **dummy_inputs(vision, text))
    rules = clip_rules(text["num_hidden_layers"], vision["num_hidden_layers"],
                       text["num_attention_heads"], vision["num_attention_heads"])
    params = tm.build_params(rules, checkpoint, shapes, ignore=IGNORED_KEYS,
                             what=f"checkpoint {path!r}")
    return model, {"params": params}


def clip_configs(config: dict) -> tuple[dict, dict, dict]:
    """(text, vision, top-level) configs of a CLIP ``config.json``, with transformers' defaults."""
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or {}),
            **(config.get("text_config_dict") or {})}
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or {}),
              **(config.get("vision_config_dict") or {})}
    top = {**CLIP_DEFAULTS, **{k: config[k] for k in CLIP_DEFAULTS if k in config}}
    return text, vision, top


def clip_model(text: dict, vision: dict, top: dict, dtype=jnp.float32) -> TwoTower:
    """The ``TwoTower`` matching HF CLIP: pre-LN vision tower, causal text tower, no proj bias."""
    fields = model_fields(text, vision, top)
    return TwoTower(image_tower=ViT(**fields["image"], dtype=dtype),
                    text_tower=TextTransformer(vocab_size=text["vocab_size"],
                                               pad_id=_int_or(text["pad_token_id"], 0),
                                               eos_id=_eos_id(text), **fields["text"], dtype=dtype),
                    embed_dim=fields["embed_dim"], proj_bias=fields["proj_bias"],
                    logit_scale_init=top["logit_scale_init_value"], dtype=dtype)


def model_fields(text: dict, vision: dict, top: dict) -> dict:
    """The ``config.model`` fields (``image``, ``text``, ``embed_dim``, ``proj_bias``) of the
    architecture of an HF CLIP config; the tokenizer supplies vocabulary and special ids."""
    image = dict(
        width=vision["hidden_size"], depth=vision["num_hidden_layers"],
        mlp_dim=vision["intermediate_size"], num_heads=vision["num_attention_heads"],
        patch_size=tm.square(vision["patch_size"], "patch size"), pool="tok", posemb="learn",
        patch_bias=False, pre_norm=True, final_norm=True,
        act=tm.hf_activation(vision["hidden_act"]), ln_eps=vision["layer_norm_eps"])
    # transformers pools at the highest id when eos_token_id == 2 (its legacy configs).
    text_fields = dict(
        width=text["hidden_size"], depth=text["num_hidden_layers"],
        mlp_dim=text["intermediate_size"], num_heads=text["num_attention_heads"],
        max_len=text["max_position_embeddings"], causal=True,
        pool="argmax" if _eos_id(text) == 2 else "eos",
        act=tm.hf_activation(text["hidden_act"]), ln_eps=text["layer_norm_eps"])
    return dict(image=image, text=text_fields, embed_dim=top["projection_dim"], proj_bias=False)


def config_blocks(path: str) -> dict:
    """What a contrastive config needs to run the HF CLIP checkpoint at ``path`` (with
    ``init_from="hf_clip:PATH"`` and ``init_towers="all"``): ``model`` fields, the ``tokenizer``
    block (the folder's CLIP BPE files) and the image size and normalisation it was trained
    with (``preprocessor_config.json``, else OpenAI's)."""
    text, vision, top = clip_configs(weights_files.read_json(os.path.join(path, "config.json")))
    fields = model_fields(text, vision, top)
    processor = os.path.join(path, "preprocessor_config.json")
    norm = weights_files.read_json(processor) if os.path.exists(processor) else {}
    return dict(
        model=dict(fields, dtype="float32"),
        tokenizer=dict(kind="clip_bpe", path=path, vocab_size=text["vocab_size"],
                       max_len=text["max_position_embeddings"]),
        image_size=tm.square(vision["image_size"], "image size"),
        mean=tuple(norm.get("image_mean", OPENAI_MEAN)), std=tuple(norm.get("image_std", OPENAI_STD)))


def _eos_id(text: dict) -> int:
    eos_id = text["eos_token_id"]
    return eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id


def _int_or(value, default: int) -> int:
    return default if value is None else int(value)


def dummy_inputs(vision: dict, text: dict) -> dict:
    """Smallest inputs that fix every parameter shape (full image size, full context)."""
    size = tm.square(vision["image_size"], "image size")
    return dict(images=np.zeros((1, size, size, vision.get("num_channels", 3)), np.float32),
                tokens=np.zeros((1, text["max_position_embeddings"]), np.int32))


def clip_rules(text_depth: int, vision_depth: int, text_heads: int, vision_heads: int):
    """Conversion rules from HF ``CLIPModel`` names to the ``TwoTower`` tree."""
    txt, img = "text_model", "vision_model"
    return [
        tm.Rule("logit_scale", "logit_scale", tm.reshape_to()),
        *tm.dense_rules("img_proj", "visual_projection", bias=False),
        *tm.dense_rules("txt_proj", "text_projection", bias=False),
        tm.Rule("text_tower/embedding/embedding", f"{txt}.embeddings.token_embedding.weight"),
        tm.Rule("text_tower/posemb", f"{txt}.embeddings.position_embedding.weight",
                tm.add_leading_axes(1)),
        *encoder_rules("text_tower/encoder", f"{txt}.encoder", text_depth, text_heads),
        *tm.layer_norm_rules("text_tower/encoder/ln_final", f"{txt}.final_layer_norm"),
        tm.Rule("image_tower/embedding/kernel", f"{img}.embeddings.patch_embedding.weight",
                tm.conv_kernel),
        tm.Rule("image_tower/cls", f"{img}.embeddings.class_embedding", tm.add_leading_axes(2)),
        tm.Rule("image_tower/posemb/pos_embedding", f"{img}.embeddings.position_embedding.weight",
                tm.add_leading_axes(1)),
        *tm.layer_norm_rules("image_tower/ln_pre", f"{img}.pre_layrnorm"),
        *encoder_rules("image_tower/encoder", f"{img}.encoder", vision_depth, vision_heads),
        # HF normalises only the pooled class token; our final LayerNorm on all tokens then
        # pooling token 0 gives the same pooled vector.
        *tm.layer_norm_rules("image_tower/encoder/ln_final", f"{img}.post_layernorm"),
    ]


def encoder_rules(target: str, source: str, depth: int, num_heads: int) -> list:
    """HF ``CLIPEncoder`` layers -> our ``Encoder`` blocks."""
    rules = []
    for i in range(depth):
        dst, src = f"{target}/block_{i}", f"{source}.layers.{i}"
        rules += tm.layer_norm_rules(f"{dst}/ln_1", f"{src}.layer_norm1")
        rules += tm.attention_rules(f"{dst}/attn", *(f"{src}.self_attn.{n}_proj"
                                                     for n in ("q", "k", "v", "out")), num_heads)
        rules += tm.layer_norm_rules(f"{dst}/ln_2", f"{src}.layer_norm2")
        rules += tm.dense_rules(f"{dst}/mlp/fc1", f"{src}.mlp.fc1")
        rules += tm.dense_rules(f"{dst}/mlp/fc2", f"{src}.mlp.fc2")
    return rules
