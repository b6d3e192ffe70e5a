"""Pretrained models: published weights imported with exact parity (Hugging Face CLIP / SigLIP /
SigLIP 2 / ViT, OpenAI and open_clip CLIP state dicts: ``hf_clip.py``, ``hf_siglip.py``,
``hf_vit.py``, ``openai_clip.py`` on ``tree_mapping.py``), towers of our own runs or published
ones for fine-tuning and LiT (``init_from.py``), and frozen contrastive models that other tasks
read (``frozen_clip.py``).

Each loader returns ``(model, variables)`` with ``model`` a multimodal_jax Flax module
configured to match the checkpoint and ``variables = {"params": ...}`` in float32.
Only safetensors / npz files are read, never pickle (``weights_files.py``).
"""

import os

from multimodal_jax.pretrained.hf_clip import load_hf_clip
from multimodal_jax.pretrained.hf_siglip import load_hf_siglip
from multimodal_jax.pretrained.hf_vit import ViTWithPooler
from multimodal_jax.pretrained.hf_vit import load_hf_vit
from multimodal_jax.pretrained.openai_clip import load_openai_clip
from multimodal_jax.pretrained.weights_files import read_checkpoint
from multimodal_jax.pretrained.weights_files import read_json

__all__ = ["load_hf_clip", "load_hf_siglip", "load_hf_vit", "load_openai_clip", "load_pretrained",
           "read_checkpoint", "ViTWithPooler"]


def load_pretrained(path: str, **kwargs):
    """Dispatches on what ``path`` holds: an HF CLIP, SigLIP (2) or ViT directory, else an OpenAI
    state dict."""
    config = os.path.join(path, "config.json")
    if os.path.isdir(path) and os.path.exists(config):
        model_type = read_json(config).get("model_type")
        if model_type == "clip":
            return load_hf_clip(path, **kwargs)
        if model_type in ("siglip", "siglip2"):
            return load_hf_siglip(path, **kwargs)
        if model_type == "vit":
            return load_hf_vit(path, **kwargs)
        raise ValueError(f"{path!r} holds a {model_type!r} model; supported Hugging Face "
                         "model types are 'clip', 'siglip', 'siglip2' and 'vit'.")
    return load_openai_clip(path, **kwargs)

