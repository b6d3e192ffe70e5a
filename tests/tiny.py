"""Tiny configs and fake data shared by the tests (small enough for 2 CPU cores)."""

import numpy as np

from multimodal_jax.configs import clip_shapes
from multimodal_jax.configs import vit_shapes


class FakeTokenizer:
    """Just the ids a model needs; tests feed random tokens directly."""

    vocab_size, pad_id, bos_id, eos_id = 64, 0, None, 1


def tiny_contrastive_config(loss: str = "softmax"):
    config = clip_shapes.get_config()
    config.loss = loss
    config.total_steps = 10
    config.batch_size = 16
    config.data.image_size = 16
    config.tokenizer.max_len = 8
    config.model.embed_dim = 16
    config.model.image.update(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=4)
    config.model.text.update(width=32, depth=2, mlp_dim=64, num_heads=2, max_len=8)
    config.optim.warmup_steps = 2
    return config


def fake_batch(batch_size: int, image_size: int, max_len: int, seed: int = 0) -> dict:
    """Random normalised images and token rows ending in eos (id 1) then padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, 64, size=(batch_size, max_len)).astype(np.int32)
    lengths = rng.integers(2, max_len, size=batch_size)
    for row, n in zip(tokens, lengths):
        row[n] = 1
        row[n + 1:] = 0
    return {"image": rng.normal(size=(batch_size, image_size, image_size, 3)).astype(np.float32),
            "tokens": tokens,
            "label": rng.integers(0, 10, size=batch_size).astype(np.int32)}


def tiny_shapes_config(data_dir: str, driver: str = "mesh"):
    """The tiny contrastive model on the built-in dataset's ``tiny`` config, end to end."""
    config = tiny_contrastive_config()
    config.data.name = "captioned_shapes/tiny"
    config.data.data_dir = str(data_dir)
    config.data.shuffle_buffer = 256
    config.tokenizer.max_len = config.model.text.max_len = 16
    config.total_steps, config.checkpoint_every_steps = 6, 3
    config.log_every_steps, config.eval_every_steps = 2, 6
    config.parallel.driver = driver
    config.evaluation.batch_size = 64
    config.evaluation.retrieval_examples = 64
    return config


def tiny_classifier_config(data_dir: str):
    """A one-block ViT classifying the 64 (shape, colour) labels of the tiny dataset."""
    config = vit_shapes.get_config()
    config.total_steps, config.batch_size = 4, 16
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 4
    config.data.update(name="captioned_shapes/tiny", data_dir=data_dir, image_size=16,
                       shuffle_buffer=256)
    config.model.image.update(width=16, depth=1, mlp_dim=32, num_heads=2, patch_size=4, pool="gap")
    config.optim.warmup_steps = 1
    config.evaluation.batch_size = 64
    return config
