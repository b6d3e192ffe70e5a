"""Random-weight Hugging Face CLIPModels and their outputs: the PyTorch reference that the CLIP
import, export and pretrained-config tests compare against (no downloads)."""

import functools

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-5
# name: (text config, vision config, projection_dim, token length fed in)
ARCHS = {
    "quick_gelu": (dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=12),
                   dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, image_size=32, patch_size=8), 16, 12),
    "gelu_wide": (dict(hidden_size=48, intermediate_size=80, num_hidden_layers=1,
                       num_attention_heads=3, max_position_embeddings=10, hidden_act="gelu",
                       layer_norm_eps=1e-6),
                  dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=2, image_size=16, patch_size=4, hidden_act="gelu",
                       layer_norm_eps=1e-6), 24, 7),  # texts shorter than the context
    "legacy_argmax": (dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2,
                           num_attention_heads=5, max_position_embeddings=9, eos_token_id=2),
                      dict(hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                           num_attention_heads=1, image_size=42, patch_size=14), 8, 9),
}
VOCAB = 64
BOS, EOS = VOCAB - 2, VOCAB - 1


def perturbed_clip(text: dict, vision: dict, proj_dim: int, seed: int = 0):
    """A CLIPModel with random weights, every tensor but logit_scale nudged off its init."""
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=VOCAB, bos_token_id=BOS, pad_token_id=0,
                         **{"eos_token_id": EOS, **text}),
        vision_config=vision, projection_dim=proj_dim)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                param.add_(0.05 * torch.randn_like(param))
    return model


def random_inputs(model, max_len, batch_images=3, seed=0):
    """NCHW pixels and ``[bos] ids eos pad..`` input_ids ``[4, max_len]`` of several lengths."""
    rng = np.random.default_rng(seed)
    size = model.config.vision_config.image_size
    images = rng.normal(size=(batch_images, 3, size, size)).astype(np.float32)
    tokens = np.zeros((4, max_len), np.int32)
    for row, length in enumerate([1, 3, max_len - 2, max_len // 2]):
        tokens[row, 0], tokens[row, 1:length + 1] = BOS, rng.integers(1, BOS, length)
        tokens[row, length + 1] = EOS
    tokens[3, max_len // 2 + 2:] = EOS  # HF-style padding with the end-of-text id
    return images, tokens


def reference(model, images, tokens):
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(images),
                    input_ids=torch.from_numpy(tokens).long())
    return {"image_embedding": out.image_embeds.numpy(), "text_embedding": out.text_embeds.numpy(),
            "logits": out.logits_per_image.numpy()}


@functools.partial(jax.jit, static_argnums=0)
def apply(model, variables, images, tokens):
    """Jitted ``model.apply``; equal models (hashable dataclasses) share one compilation."""
    return model.apply(variables, images=images, tokens=tokens)


def max_diffs(model, variables, images, tokens, ref):
    with jax.default_matmul_precision("float32"):
        out = apply(model, variables, images.transpose(0, 2, 3, 1), tokens)
    return {k: float(np.max(np.abs(np.asarray(out[k]) - ref[k]))) for k in ref}
