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
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from multimodal_jax.tasks import optim  # noqa: E402
from multimodal_jax.pretrained import load_hf_vit  # noqa: E402
from multimodal_jax.parallel import flops as analytic  # noqa: E402
from multimodal_jax.tasks import classification  # noqa: E402

# name: batch, image size, patch, (width, depth, mlp, heads), classes.
SIZES = {
    "tiny": dict(batch=128, image=32, patch=4, dims=(256, 6, 1024, 4), classes=10),
    "b16_112": dict(batch=16, image=112, patch=16, dims=(768, 12, 3072, 12), classes=1000),
}
LR, WEIGHT_DECAY, CLIP_NORM = 1e-4, 0.1, 1.0


def vit_config(size: dict) -> transformers.ViTConfig:
    """The one config both sides are built from."""
    width, depth, mlp, heads = size["dims"]
    return transformers.ViTConfig(hidden_size=width, num_hidden_layers=depth,
                                  intermediate_size=mlp, num_attention_heads=heads,
                                  image_size=size["image"], patch_size=size["patch"],
                                  num_labels=size["classes"])


def make_batch(size: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Normalised NHWC images and integer labels."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(size["batch"], size["image"], size["image"], 3)).astype(np.float32)
    labels = rng.integers(0, size["classes"], size["batch"]).astype(np.int32)
    return {"image": images, "label": labels}


def torch_side(model, batch: dict):
    """(Side, first-step (loss, grad norm)) for HF ViTForImageClassification (NCHW pixels)."""
    pixels = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(batch["label"]).long()
    loss_fn = lambda m: m(pixel_values=pixels, labels=labels).loss  # noqa: E731
    return common.torch_side(model, loss_fn, LR, WEIGHT_DECAY, CLIP_NORM)


def ours_side(path: str, batch: dict, classes: int, model_dtype=None):
    """(Side, first-step metrics, step FLOPs) for our step as ``python -m train`` runs it;
    ``model_dtype`` (e.g. ``jnp.bfloat16``) sets the compute dtype, params stay float32."""
    model, variables = load_hf_vit(path, with_pooler=False,
                                   **({"dtype": model_dtype} if model_dtype else {}))
    config = optim.default_config()
    config.update(lr=LR, warmup_steps=0, weight_decay=WEIGHT_DECAY, grad_clip_norm=CLIP_NORM)
    state = classification.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                             tx=optim.make_optimizer(config, 10_000))
    step = functools.partial(classification.train_step, num_classes=classes, loss="softmax",
                             label_smoothing=0.0, mix="none")
    side, first, flops = common.train_side("ours", step, state, batch)
    images = batch["image"]
    flops["analytic"] = len(images) * analytic.classification_train(model, images.shape[1])
    return side, first, flops


def build(size: dict):
    """(HF model, its save_pretrained directory (a TemporaryDirectory), batch)."""
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(vit_config(size))
    tmp = tempfile.TemporaryDirectory()
    hf.save_pretrained(tmp.name)
    return hf, tmp, make_batch(size)


def measure(name: str, size: dict, rounds: int, steps: int, warmup: int) -> dict:
    """Builds both sides of one size, checks their first steps agree, times them interleaved."""
    hf, tmp, batch = build(size)
    with tmp:
        ours, ours_first, flops = ours_side(tmp.name, batch, size["classes"])
    return common.time_pair(name, (ours, ours_first), torch_side(hf, batch), flops, size["batch"],
                            rounds, steps, warmup)


def main():
    common.comparison_main(__doc__, THREADS, SIZES, measure)


if __name__ == "__main__":
    main()
