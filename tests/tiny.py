"""Tiny configs and fake data shared by the tests (small enough for 2 CPU cores)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from multimodal_jax.configs import caption_shapes
from multimodal_jax.configs import clip_shapes
from multimodal_jax.configs import clip_shapes_hf
from multimodal_jax.configs import vit_shapes
from multimodal_jax.parallel import mesh as mesh_lib


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


def tiny_hf_clip_config(**image):
    """configs/clip_shapes_hf.py at test size, with quick_gelu (OpenAI's activation): a model
    that both CLIPModel and open_clip can express."""
    config = tiny_contrastive_config()
    reference = clip_shapes_hf.get_config()
    config.tokenizer = reference.tokenizer
    config.tokenizer.max_len = 8
    config.model.image.update({k: reference.model.image[k]
                               for k in ("pool", "pre_norm", "patch_bias", "final_norm", "ln_eps")})
    config.model.text.update(pool="eos", ln_eps=1e-5, act="quick_gelu")
    config.model.image.update(act="quick_gelu", **image)
    return config


def tiny_hf_clip_run_config(data_dir: str):
    """``tiny_hf_clip_config`` trained 2 steps on the tiny dataset, its CLIP BPE vocabulary
    learned from the captions: a workdir to export, fast."""
    config = tiny_hf_clip_config()
    config.data.update(name="captioned_shapes/tiny", data_dir=str(data_dir), shuffle_buffer=256)
    config.tokenizer.update(max_len=16, vocab_size=700)
    config.model.text.max_len = 16
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2, log_every_steps=1)
    config.evaluation.update(batch_size=64, retrieval_examples=64)
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


NUM_CLASSES = 10


def tiny_classification_config(**overrides):
    """A two-block ViT on 16 px images, shaped like the tower of ``tiny.tiny_contrastive_config``."""
    config = vit_shapes.get_config()
    config.num_classes = NUM_CLASSES
    config.total_steps, config.batch_size = 10, 16
    config.data.image_size = 16
    config.model.image.update(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=4)
    config.optim.warmup_steps = 2
    config.update(overrides)
    return config


def tiny_captioning_config(**overrides):
    """A captioner whose tower is shaped like ``clip_run``'s, on 16 px."""
    config = caption_shapes.get_config()
    config.init_from, config.lock_image_tower = "", False
    config.prerequisites = ml_collections.ConfigDict()  # no clip_shapes run trained first
    config.total_steps, config.batch_size = 10, 16
    config.data.image_size = 16
    config.tokenizer.max_len = 8
    config.model.image.update(width=32, depth=1, mlp_dim=64, num_heads=2, patch_size=4)
    config.model.decoder.update(width=32, depth=1, mlp_dim=64, num_heads=2, max_len=12)
    config.optim.warmup_steps = 0
    config.update(overrides)
    return config


class SmallState(train_state.TrainState):
    """A small train state: two parameters and Adam's moments."""


def small_train_state(value: float = 1.0, step: int = 0, width: int = 3):
    """Two parameters (w [4, width], b [width]) scaled by ``value``, with Adam's moments,
    replicated over the devices: a checkpoint small enough to save many times in a test."""
    params = {"w": jnp.full((4, width), value), "b": jnp.arange(width, dtype=jnp.float32) * value}
    state = SmallState.create(apply_fn=None, params=params, tx=optax.adam(0.1)).replace(step=step)
    return jax.device_put(state, mesh_lib.replicated(mesh_lib.data_mesh()))
