"""The analytic FLOP counts agree with XLA's cost_analysis within 5% (ViT-B/16, a CLIP text
tower, a two-tower model), and the MFU meter reports what it measures."""

import jax
import jax.numpy as jnp
import pytest

from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.parallel import flops
from tests import tiny


def _xla_forward(model, **inputs):
    """XLA's count for one forward pass (nothing is materialised: abstract params and inputs)."""
    params = jax.eval_shape(lambda kw: model.init(jax.random.key(0), **kw), inputs)
    return flops.xla_flops(lambda p, kw: model.apply(p, **kw), params, inputs)


@pytest.mark.parametrize("pool", ["tok", "map"])
def test_vit_b16_count_matches_xla(pool):
    model = ViT(variant="B/16", pool=pool)
    images = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
    analytic = 2 * flops.vit(model, 224)
    assert analytic == pytest.approx(_xla_forward(model, images=images), rel=0.05)
    if pool == "tok":  # ViT-B/16 at 224 px: the well-known 17.6 G multiply-adds per image
        assert 2 * 17.5e9 < flops.vit(model, 224) < 2 * 17.7e9


def test_clip_text_tower_count_matches_xla():
    model = TextTransformer(vocab_size=49408, width=512, depth=12, num_heads=8, max_len=77,
                            act="quick_gelu", ln_eps=1e-5)
    tokens = jax.ShapeDtypeStruct((2, 77), jnp.int32)
    assert 2 * flops.text(model, 77) == pytest.approx(_xla_forward(model, tokens=tokens), rel=0.05)


def test_two_tower_count_matches_xla():
    model = TwoTower(image_tower=ViT(variant="B/32", pool="map"),  # SigLIP-like B/32 + CLIP text
                     text_tower=TextTransformer(vocab_size=49408, width=512, depth=12, num_heads=8,
                                                max_len=77),
                     embed_dim=512)
    inputs = dict(images=jax.ShapeDtypeStruct((4, 224, 224, 3), jnp.float32),
                  tokens=jax.ShapeDtypeStruct((4, 77), jnp.int32))
    # The model's own [4, 4] logits are the loss's image->text similarities.
    analytic = 4 * (flops.two_tower(model, 224, 77) + flops.contrastive_loss(512, 4, "sigmoid"))
    assert analytic == pytest.approx(_xla_forward(model, **inputs), rel=0.05)


def test_train_count_of_a_task_model_and_the_meter():
    config = tiny.tiny_contrastive_config()
    from multimodal_jax.tasks import contrastive  # noqa: PLC0415
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    per_example = contrastive.train_flops_per_example(config, model)
    size, length = config.data.image_size, config.tokenizer.max_len
    assert per_example == 3 * (flops.two_tower(model, size, length)
                               + flops.contrastive_loss(16, config.batch_size, "softmax"))
    meter = flops.Throughput(flops_per_step=4e12, num_devices=2, peak=1e12, step=10)
    out = meter(12)
    assert out["step_time_s"] > 0
    assert out["tflops_per_device"] == pytest.approx(2.0 / out["step_time_s"])
    assert out["mfu"] == pytest.approx(out["tflops_per_device"])
    assert flops.measure_peak_flops(jax.local_devices()[:2], size=128, repeats=1) > 1e8
