"""Our contrastive models as open_clip checkpoints: ``open_clip_model.safetensors`` with open_clip's
(OpenAI's) state-dict names, fused ``in_proj_weight`` and all, beside ``open_clip_config.json``
(``model_cfg`` as open_clip's model configs write it, and ``preprocess_cfg``). The tensors are
``openai_clip.openai_rules`` undone, so ``load_openai_clip`` on the folder gives back the same
parameters. What open_clip's ``CLIP`` cannot express is a ``NotExpressible`` error naming each
difference."""

import os
from typing import Sequence

from safetensors.numpy import save_file

from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.pretrained import hf_export
from multimodal_jax.pretrained import openai_clip
from multimodal_jax.pretrained import tree_mapping as tm

WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"
ACTS = ("gelu", "quick_gelu")  # open_clip's nn.GELU, or QuickGELU (quick_gelu=True)
LN_EPS = 1e-5  # open_clip's LayerNorm


def differences(model: TwoTower) -> list[str]:
    """Why open_clip's ``CLIP`` cannot express ``model`` (none: it can)."""
    vit, text = model.image_tower, model.text_tower
    out = hf_export.vit_fields(vit, "config.model.image", "open_clip", pool="tok",
                               patch_bias=False, pre_norm=vit.pre_norm)
    if vit.num_classes:
        out.append("config.model.image.num_classes is set: open_clip's image tower has no head")
    if vit.act != text.act or vit.act not in ACTS:
        out.append(f"config.model.image.act={vit.act!r}, config.model.text.act={text.act!r}: "
                   f"open_clip uses one activation for both towers, one of {ACTS}")
    for where, eps in (("image", vit.ln_eps), ("text", text.ln_eps)):
        if eps != LN_EPS:
            out.append(f"config.model.{where}.ln_eps={eps}: open_clip's LayerNorms use {LN_EPS}")
    if not text.causal:
        out.append("config.model.text.causal=False: open_clip's text tower is causal")
    eos_is_max = text.eos_id == text.vocab_size - 1
    if not (text.pool == "argmax" or (text.pool == "eos" and eos_is_max)):
        out.append(f"config.model.text.pool={text.pool!r} (end-of-text id {text.eos_id} of "
                   f"{text.vocab_size}): open_clip pools at the highest token id, which is the "
                   "end-of-text token only in a CLIP BPE vocabulary (tokenizer.kind='clip_bpe')")
    if model.proj_bias:
        out.append("config.model.proj_bias=True: open_clip's projections have no bias")
    if not model.project_image:
        out.append("config.model.project_image=False: open_clip projects the image features")
    for where, block in (("image", vit.size()), ("text", dict(width=text.width,
                                                             mlp_dim=text.mlp_dim or 4 * text.width))):
        if (block["mlp_dim"] / block["width"]) * block["width"] != block["mlp_dim"]:
            out.append(f"config.model.{where}.mlp_dim is not a whole ratio of the width")
    return out


def config(model: TwoTower, image_size: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """``open_clip_config.json``: the model config open_clip builds ``CLIP`` from, and the
    image preprocessing."""
    vit, text = model.image_tower, model.text_tower
    size = vit.size()
    model_cfg = dict(
        embed_dim=model.embed_dim, quick_gelu=vit.act == "quick_gelu",
        vision_cfg=dict(image_size=int(image_size), layers=size["depth"], width=size["width"],
                        patch_size=size["patch_size"], head_width=size["width"] // size["num_heads"],
                        mlp_ratio=size["mlp_dim"] / size["width"], no_ln_pre=not vit.pre_norm),
        text_cfg=dict(context_length=text.max_len, vocab_size=text.vocab_size, width=text.width,
                      heads=text.num_heads, layers=text.depth,
                      mlp_ratio=(text.mlp_dim or 4 * text.width) / text.width, pool_type="argmax"))
    if model.logit_bias_init is not None:
        model_cfg["init_logit_bias"] = float(model.logit_bias_init)
    return dict(model_cfg=model_cfg, preprocess_cfg=dict(
        mean=[float(m) for m in mean], std=[float(s) for s in std], interpolation="bilinear",
        resize_mode="shortest"))


def export(model: TwoTower, params: dict, out_dir: str, *, image_size: int,
           mean: Sequence[float], std: Sequence[float]) -> list[str]:
    """Writes ``model`` + ``params`` as an open_clip checkpoint folder; returns its files."""
    hf_export.raise_if(differences(model), "open_clip")
    vit, text = model.image_tower, model.text_tower
    size = vit.size()
    dims = dict(vision_depth=size["depth"], text_depth=text.depth, pre_norm=vit.pre_norm,
                logit_bias=model.logit_bias_init)
    rules = openai_clip.openai_rules(dims, size["num_heads"], text.num_heads)
    tensors = tm.export_params(rules, params, "the contrastive model")
    os.makedirs(out_dir, exist_ok=True)
    hf_export.write_json(os.path.join(out_dir, CONFIG), config(model, image_size, mean, std))
    save_file(tensors, os.path.join(out_dir, WEIGHTS), metadata={"format": "pt"})
    return sorted(os.listdir(out_dir))
