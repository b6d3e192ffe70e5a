"""Hugging Face ``ViTModel`` / ``ViTForImageClassification`` checkpoints -> our ``ViT``.

``model, variables = load_hf_vit(path)``; ``model.apply(variables, images=<NHWC>)`` returns
``pooled`` (the final-LayerNormed class token, HF's ``last_hidden_state[:, 0]``), ``tokens``
(HF's ``last_hidden_state``), ``logits`` when the checkpoint has a classifier, and
``pooler_output`` (dense + tanh on the class token) when it has HF's pooler.
"""

import os
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from multimodal_jax.models import layers
from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import tree_mapping as tm
from multimodal_jax.pretrained import weights_files

# Defaults of transformers' ViTConfig (older versions write only non-default values).
VIT_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", layer_norm_eps=1e-12,
                    image_size=224, patch_size=16, num_channels=3, qkv_bias=True,
                    pooler_act="tanh")
# Present only for masked-image pretraining; not used at inference.
IGNORED_KEYS = (r"(^|\.)embeddings\.mask_token$", r"position_ids$")


class ViTWithPooler(nn.Module):
    """A ``ViT`` plus HF's pooler; the ViT's params sit at the top level beside ``pooler``."""

    vit: ViT
    pooler_dim: int
    pooler_act: str = "tanh"
    dtype: Any = jnp.float32

    def setup(self):
        nn.share_scope(self, self.vit)
        self.pooler = nn.Dense(self.pooler_dim, dtype=self.dtype, name="pooler")

    def __call__(self, images):
        out = dict(self.vit(images))
        act = jnp.tanh if self.pooler_act == "tanh" else layers.get_activation(self.pooler_act)
        out["pooler_output"] = act(self.pooler(out["pooled"]))
        return out


def load_hf_vit(path: str, with_pooler: bool = True, dtype=jnp.float32):
    """``(model, {"params": ...})`` for a Hugging Face ViT checkpoint directory ``path``.

    The model is a plain ``ViT`` (with ``num_classes`` when the checkpoint has a classifier),
    or a ``ViTWithPooler`` when the checkpoint has HF's pooler and ``with_pooler`` is True.
    With ``with_pooler=False`` the pooler weights are dropped and the params are exactly a
    ``ViT``'s, ready to fine-tune.
    """
    config = {**VIT_DEFAULTS, **weights_files.read_json(os.path.join(path, "config.json"))}
    if config.get("model_type", "vit") != "vit":
        raise ValueError(f"{path!r} holds a {config.get('model_type')!r} model, not 'vit'. "
                         "For CLIP checkpoints use multimodal_jax.pretrained.load_hf_clip.")
    checkpoint = tm.strip_prefix(weights_files.read_checkpoint(path), "vit.")
    num_classes = _num_classes(checkpoint)
    has_pooler = "pooler.dense.weight" in checkpoint
    vit = vit_model(config, num_classes, dtype)
    model = vit
    if has_pooler and with_pooler:
        model = ViTWithPooler(vit, config.get("pooler_output_size") or config["hidden_size"],
                              _pooler_act(config["pooler_act"]), dtype=dtype)
    elif has_pooler:
        checkpoint = {k: v for k, v in checkpoint.items() if not k.startswith("pooler.")}
    size = tm.square(config["image_size"], "image size")
    shapes = tm.param_shapes(model, images=np.zeros((1, size, size, config["num_channels"]),
                                                    np.float32))
    rules = vit_rules(config["num_hidden_layers"], config["num_attention_heads"],
                      config["qkv_bias"], num_classes is not None, has_pooler and with_pooler)
    params = tm.build_params(rules, checkpoint, shapes, ignore=IGNORED_KEYS,
                             what=f"checkpoint {path!r}")
    return model, {"params": params}


def _num_classes(checkpoint: dict):
    """The classifier's output size, or None for a checkpoint without a classifier."""
    weight = checkpoint.get("classifier.weight")
    return None if weight is None else int(weight.shape[0])


def _pooler_act(name: str) -> str:
    return "tanh" if name == "tanh" else tm.hf_activation(name)


def vit_model(config: dict, num_classes, dtype=jnp.float32) -> ViT:
    """The ``ViT`` matching HF's: class token, learned posemb, no ln_pre, final LayerNorm."""
    return ViT(
        width=config["hidden_size"], depth=config["num_hidden_layers"],
        mlp_dim=config["intermediate_size"], num_heads=config["num_attention_heads"],
        patch_size=tm.square(config["patch_size"], "patch size"), pool="tok", posemb="learn",
        patch_bias=True, pre_norm=False, final_norm=True,
        act=tm.hf_activation(config["hidden_act"]), ln_eps=config["layer_norm_eps"],
        num_classes=num_classes, dtype=dtype)


def vit_rules(depth: int, num_heads: int, qkv_bias: bool, head: bool, pooler: bool) -> list:
    """Conversion rules from HF ViT names (without the ``vit.`` prefix) to our ``ViT`` tree."""
    patches = "embeddings.patch_embeddings.projection"
    rules = [
        tm.Rule("embedding/kernel", f"{patches}.weight", tm.conv_kernel),
        tm.Rule("embedding/bias", f"{patches}.bias"),
        tm.Rule("cls", "embeddings.cls_token"),
        tm.Rule("posemb/pos_embedding", "embeddings.position_embeddings"),
        *tm.layer_norm_rules("encoder/ln_final", "layernorm"),
    ]
    for i in range(depth):
        dst, src = f"encoder/block_{i}", f"encoder.layer.{i}"
        attn = f"{src}.attention.attention"
        rules += tm.layer_norm_rules(f"{dst}/ln_1", f"{src}.layernorm_before")
        rules += tm.attention_rules(f"{dst}/attn", f"{attn}.query", f"{attn}.key", f"{attn}.value",
                                    f"{src}.attention.output.dense", num_heads, qkv_bias)
        rules += tm.layer_norm_rules(f"{dst}/ln_2", f"{src}.layernorm_after")
        rules += tm.dense_rules(f"{dst}/mlp/fc1", f"{src}.intermediate.dense")
        rules += tm.dense_rules(f"{dst}/mlp/fc2", f"{src}.output.dense")
    if head:
        rules += tm.dense_rules("head", "classifier")
    if pooler:
        rules += tm.dense_rules("pooler", "pooler.dense")
    return rules
