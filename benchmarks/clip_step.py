"""Contrastive train step, multimodal_jax against Hugging Face PyTorch ``CLIPModel``: images/s.

Run (figures in README.md, "Performance"):
  python -m benchmarks.clip_step                 # both sizes, 7 rounds x 5 steps per side
  python -m benchmarks.clip_step --quick         # smoke test
  python -m benchmarks.clip_step --sizes tiny --rounds 9

One ``transformers.CLIPConfig`` per size builds the PyTorch model; ours is imported from its
``save_pretrained`` directory by ``pretrained.load_hf_clip``, so both have the same architecture
(quick_gelu, eps 1e-5, causal text tower, no projection bias) and the same starting weights,
and the script checks that their first-step losses and gradient norms agree. Both take the
same batch and run forward, backward, clipping to global norm 1 and AdamW, in float32. Ours
is what ``python -m train`` runs: ``tasks.contrastive.train_step`` inside the non-finite
guard under the mesh driver (``jit(shard_map(...))`` with donated state).
"""

from benchmarks import common

THREADS = common.set_threads(cpu_only=True)  # before torch / jax start; both on the CPU

import functools  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from multimodal_jax.parallel import flops  # noqa: E402
from multimodal_jax.pretrained import load_hf_clip  # noqa: E402
from multimodal_jax.tasks import contrastive  # noqa: E402

# name: batch, image size, patch, vision (width, depth, mlp, heads), text (width, depth, mlp,
# heads), text length, vocabulary, projection dim.
SIZES = {
    "tiny": dict(batch=128, image=32, patch=4, vision=(256, 6, 1024, 4),
                 text=(256, 6, 1024, 4), length=16, vocab=1000, proj=256),
    "b16_112": dict(batch=16, image=112, patch=16, vision=(768, 12, 3072, 12),
                    text=(512, 12, 2048, 8), length=77, vocab=49408, proj=512),
}


def hf_model(size: dict) -> transformers.CLIPModel:
    """The one config both sides are built from."""
    def tower(dims):
        width, depth, mlp, heads = dims
        return dict(hidden_size=width, num_hidden_layers=depth, intermediate_size=mlp,
                    num_attention_heads=heads)
    text = dict(tower(size["text"]), vocab_size=size["vocab"], max_position_embeddings=size["length"],
                pad_token_id=0, bos_token_id=size["vocab"] - 2, eos_token_id=size["vocab"] - 1)
    vision = dict(tower(size["vision"]), image_size=size["image"], patch_size=size["patch"])
    return transformers.CLIPModel(transformers.CLIPConfig(
        text_config=text, vision_config=vision, projection_dim=size["proj"]))


def make_batch(size: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Normalised NHWC images and ``[bos] ids eos pad..`` token rows of random lengths."""
    rng = np.random.default_rng(seed)
    batch, length, vocab = size["batch"], size["length"], size["vocab"]
    tokens = np.zeros((batch, length), np.int32)
    for row, n in zip(tokens, rng.integers(1, length - 1, batch)):
        row[0], row[1:n + 1], row[n + 1] = vocab - 2, rng.integers(1, vocab - 2, n), vocab - 1
    images = rng.normal(size=(batch, size["image"], size["image"], 3)).astype(np.float32)
    return {"image": images, "tokens": tokens}


def torch_loss(model: transformers.CLIPModel, batch: dict):
    """CLIPModel's contrastive loss on the batch (NCHW pixels)."""
    pixels = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy())
    ids = torch.from_numpy(batch["tokens"]).long()
    return model(input_ids=ids, pixel_values=pixels, return_loss=True).loss


def analytic(model, batch: dict) -> float:
    images, tokens = batch["image"], batch["tokens"]
    return flops.contrastive_train(model, images.shape[1], tokens.shape[1], len(images), "softmax")


COMPARISON = common.HfComparison(
    hf_model=hf_model, make_batch=make_batch, torch_loss=torch_loss, load_ours=load_hf_clip,
    state_class=contrastive.TrainState,
    step=lambda size: functools.partial(contrastive.train_step, loss="softmax"),
    analytic=analytic)


def main():
    common.comparison_main(__doc__, THREADS, SIZES, COMPARISON.measure)


if __name__ == "__main__":
    main()
