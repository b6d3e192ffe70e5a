"""Classification train step, multimodal_jax against Hugging Face ``ViTForImageClassification``.

Run (figures in README.md, "Performance"):
  python -m benchmarks.vit_step                  # both sizes, 7 rounds x 5 steps per side
  python -m benchmarks.vit_step --quick          # smoke test

One ``transformers.ViTConfig`` per size builds the PyTorch model; ours is imported from its
``save_pretrained`` directory by ``pretrained.load_hf_vit`` (exact GELU, eps 1e-12, class token,
patch bias), so both have the same architecture and starting weights, and the script checks
that their first-step losses and gradient norms agree. Both run softmax cross-entropy on the
same batch, backward, clipping to global norm 1 and AdamW, in float32. Ours is
``tasks.classification.train_step`` (no label smoothing, no mixup) inside the non-finite guard
under the mesh driver, as ``python -m train`` runs it.
"""

from benchmarks import common

THREADS = common.set_threads(cpu_only=True)  # before torch / jax start; both on the CPU

import functools  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from multimodal_jax.parallel import flops  # noqa: E402
from multimodal_jax.pretrained import load_hf_vit  # noqa: E402
from multimodal_jax.tasks import classification  # noqa: E402

# name: batch, image size, patch, (width, depth, mlp, heads), classes.
SIZES = {
    "tiny": dict(batch=128, image=32, patch=4, dims=(256, 6, 1024, 4), classes=10),
    "b16_112": dict(batch=16, image=112, patch=16, dims=(768, 12, 3072, 12), classes=1000),
}


def hf_model(size: dict) -> transformers.ViTForImageClassification:
    """The one config both sides are built from."""
    width, depth, mlp, heads = size["dims"]
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=width, num_hidden_layers=depth, intermediate_size=mlp,
        num_attention_heads=heads, image_size=size["image"], patch_size=size["patch"],
        num_labels=size["classes"]))


def make_batch(size: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Normalised NHWC images and integer labels."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(size["batch"], size["image"], size["image"], 3)).astype(np.float32)
    labels = rng.integers(0, size["classes"], size["batch"]).astype(np.int32)
    return {"image": images, "label": labels}


def torch_loss(model, batch: dict):
    """ViTForImageClassification's cross-entropy on the batch (NCHW pixels)."""
    pixels = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy())
    return model(pixel_values=pixels, labels=torch.from_numpy(batch["label"]).long()).loss


def our_step(size: dict):
    return functools.partial(classification.train_step, num_classes=size["classes"],
                             loss="softmax", label_smoothing=0.0, mix="none")


COMPARISON = common.HfComparison(
    hf_model=hf_model, make_batch=make_batch, torch_loss=torch_loss,
    load_ours=functools.partial(load_hf_vit, with_pooler=False),
    state_class=classification.TrainState, step=our_step,
    analytic=lambda model, batch: flops.classification_train(model, batch["image"].shape[1]))


def main():
    common.comparison_main(__doc__, THREADS, SIZES, COMPARISON.measure)


if __name__ == "__main__":
    main()
