"""Tiny GAN configs and setups for the tests: 8 px images (one block in G and in D), a few
channels, one-layer frozen towers at 16 px (the GAN's images are resized for them)."""

import jax
import jax.numpy as jnp
import numpy as np

from multimodal_jax.configs import gan_shapes
from multimodal_jax.models import factory
from multimodal_jax.pretrained import frozen_clip
from multimodal_jax.tasks import adversarial
from tests import tiny

SIZE = 8  # the GAN's images
JUDGE_SIZE = 16  # the frozen encoders' and classifier's


def tiny_gan_config(data_dir: str = "", kind: str = "text"):
    """``configs/gan_shapes.py`` shrunk: 8 px, widths of 8-16, 4 steps; with ``data_dir`` its
    prerequisites are tiny runs on the tiny dataset too."""
    config = gan_shapes.get_config()
    config.total_steps, config.batch_size = 4, 16
    config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps = 2, 2, 2
    config.data.update(name="captioned_shapes/tiny", data_dir=data_dir, image_size=SIZE,
                       shuffle_buffer=256, train_filter=None)
    config.model.generator.update(widths=(16, 8), style_dim=16, cond_dim=16, mapping_depth=1,
                                  groups=4)
    config.model.discriminator.update(widths=(8,))
    config.gan.update(z_dim=8, r1_interval=2, align_late_steps=1)  # the last step pulls harder
    config.evaluation.update(batch_size=64, kid_subsets=5, kid_subset_size=16, grid_size=8,
                             num_examples=64)
    if data_dir:
        clip, eval_encoder = _tiny_clip_config(data_dir), _tiny_clip_config(data_dir)
        eval_encoder.update(seed=1, total_steps=2, checkpoint_every_steps=2, eval_every_steps=2)
        config.prerequisites.clip.config = clip
        config.prerequisites.eval_encoder.config = eval_encoder
        config.prerequisites.classifier.config = tiny.tiny_classifier_config(data_dir)
    if kind == "class":
        config.condition.update(kind="class", num_classes=64)
        config.gan.update(align_weight=0.0, align_late_steps=0)
        config.data.text_key = None  # the evaluation's captions: "a photo of a {class}."
        del config.prerequisites["clip"]
    return config


def _one_layer_towers(config):
    config.model.image.update(depth=1, pool="gap")
    config.model.text.depth = 1
    return config


def _tiny_clip_config(data_dir: str):
    """``tiny.tiny_shapes_config`` with one-layer towers and 4 steps."""
    config = _one_layer_towers(tiny.tiny_shapes_config(data_dir))
    config.total_steps = 4
    return config


def random_clip(max_len: int = 8):
    """A tiny two-tower model with random params, as the frozen conditioning model."""
    config = _one_layer_towers(tiny.tiny_contrastive_config())
    tok = tiny.FakeTokenizer
    model = factory.build_two_tower(config.model, config.loss, tok.vocab_size, tok.pad_id, tok.eos_id)
    params = jax.jit(model.init)(jax.random.key(7), images=jnp.zeros((1, JUDGE_SIZE, JUDGE_SIZE, 3)),
                                 tokens=jnp.zeros((1, max_len), jnp.int32))["params"]
    return frozen_clip.FrozenClip(model, JUDGE_SIZE, (0.5,) * 3, (0.5,) * 3), params


def setup_and_state(kind: str = "text", **gan_overrides):
    """A tiny Setup and fresh state without any data or prerequisite on disk."""
    config = tiny_gan_config(kind=kind)
    config.gan.update(gan_overrides)
    clip, frozen = (None, {}) if kind == "class" else random_clip()
    if clip is not None:
        frozen = {"clip": frozen}
    setup = adversarial.make_setup(config, clip)
    state = adversarial.create_state(setup, jax.random.key(0),
                                     adversarial.make_optimizer(config.optim.g, config.total_steps),
                                     adversarial.make_optimizer(config.optim.d, config.total_steps), frozen)
    return config, setup, state


def fake_batch(batch_size: int, seed: int = 0) -> dict:
    """Random images in [-1, 1], token rows and labels (< 64)."""
    batch = tiny.fake_batch(batch_size, SIZE, 8, seed)
    batch["image"] = np.tanh(batch["image"]).astype(np.float32)
    batch["label"] = np.random.default_rng(seed).integers(0, 64, batch_size).astype(np.int32)
    return batch
