"""The model modules: variants by string, pooling and position-embedding options, padding
invariance of the text tower, rematerialisation leaving numbers unchanged."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.models import posemb
from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.models.vit import parse_variant

IMAGES = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))


def test_parse_variant():
    assert parse_variant("B/16") == dict(width=768, depth=12, mlp_dim=3072, num_heads=12, patch_size=16)
    assert parse_variant("g")["depth"] == 40
    for bad in ("Q/16", "B/x"):
        with pytest.raises(ValueError, match="Unknown ViT variant"):
            parse_variant(bad)


@pytest.mark.parametrize("pool", ["tok", "gap", "map"])
@pytest.mark.parametrize("pos", ["learn", "sincos2d"])
def test_vit_pooling_and_posemb(pool, pos):
    model = ViT(variant="mu/4", pool=pool, posemb=pos, num_classes=5)
    out, _ = jax.jit(model.init_with_output)(jax.random.key(1), IMAGES)
    tokens = 16 + (pool == "tok")
    assert out["tokens"].shape == (2, tokens, 32)
    assert out["pooled"].shape == (2, 32) and out["logits"].shape == (2, 5)


def test_vit_rejects_untiled_images():
    with pytest.raises(ValueError, match="not divisible by the patch size 5"):
        ViT(variant="mu/5").init(jax.random.key(0), IMAGES)


def test_sincos_is_fixed_and_distinct():
    emb = posemb.sincos_2d(4, 4, 32)
    assert emb.shape == (1, 16, 32)
    assert len({tuple(np.round(r, 5)) for r in emb[0]}) == 16


def test_remat_gives_same_values_and_gradients():
    plain, remat = (ViT(variant="mu/4", remat_policy=p) for p in (None, "nothing_saveable"))
    variables = plain.init(jax.random.key(0), IMAGES)
    loss = lambda m: lambda v: jnp.sum(m.apply(v, IMAGES)["pooled"] ** 2)  # noqa: E731
    g1, g2 = jax.grad(loss(plain))(variables), jax.grad(loss(remat))(variables)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g1, g2)


def _text(pool, causal):
    return TextTransformer(vocab_size=20, width=32, depth=2, num_heads=2, max_len=8, pool=pool,
                           causal=causal, pad_id=0, eos_id=1)


@pytest.mark.parametrize("pool,causal", [("eos", True), ("mean", False), ("map", False),
                                         ("first", False), ("argmax", True)])
def test_text_pooling_ignores_padding(pool, causal):
    model = _text(pool, causal)
    short = jnp.array([[5, 6, 7, 1, 0, 0]])
    longer = jnp.array([[5, 6, 7, 1, 0, 0, 0, 0]])
    variables = model.init(jax.random.key(0), longer)
    a = model.apply(variables, short)["pooled"]
    b = model.apply(variables, longer)["pooled"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_causal_eos_pooling_does_not_see_later_tokens():
    model = _text("eos", True)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    a = model.apply(variables, jnp.array([[5, 6, 1, 0, 0, 0, 0, 0]]))["pooled"]
    b = model.apply(variables, jnp.array([[5, 6, 1, 9, 9, 9, 9, 9]]))["pooled"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_two_tower_outputs():
    model = TwoTower(ViT(variant="mu/4"), _text("eos", True), embed_dim=8, logit_bias_init=-10.0)
    tokens = jnp.array([[5, 6, 1, 0], [7, 1, 0, 0], [8, 8, 8, 1]])
    variables = model.init(jax.random.key(0), images=IMAGES, tokens=tokens)
    out = model.apply(variables, images=IMAGES, tokens=tokens)
    np.testing.assert_allclose(jnp.linalg.norm(out["image_embedding"], axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(out["text_embedding"], axis=-1), 1.0, rtol=1e-6)
    expected = out["logit_scale"] * out["image_embedding"] @ out["text_embedding"].T - 10.0
    assert out["logits"].shape == (2, 3)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-5, atol=1e-5)


def test_attention_through_jax_nn_equals_flax_attention():
    """``attention_impl="xla"`` (``jax.nn.dot_product_attention``, also what "cudnn" calls on
    GPU) computes today's attention: the same params give the same outputs and gradients,
    for the ViT with its MAP head and for the causal and the padded bidirectional text tower."""
    tokens = jnp.array([[5, 6, 7, 1, 0, 0], [8, 9, 1, 0, 0, 0]], jnp.int32)
    text = functools.partial(TextTransformer, vocab_size=16, width=32, depth=2, num_heads=2,
                             max_len=6)
    cases = [(functools.partial(ViT, variant="mu/4", pool="map"), IMAGES),
             (functools.partial(text, causal=True, pool="eos"), tokens),
             (functools.partial(text, causal=False, pool="map"), tokens)]
    for make, x in cases:
        params = make(attention_impl="flax").init(jax.random.key(2), x)

        def loss(p, impl, make=make, x=x):
            return jnp.sum(make(attention_impl=impl).apply(p, x)["pooled"] ** 2)

        def tokens(impl, make=make, x=x, params=params):
            return jax.jit(make(attention_impl=impl).apply)(params, x)["tokens"]
        np.testing.assert_allclose(tokens("xla"), tokens("flax"), rtol=1e-5, atol=1e-5)
        # float32 sums in another order: gradients up to ~0.5 agree to ~2e-5
        grad = jax.jit(jax.grad(loss), static_argnums=1)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
                     grad(params, "xla"), grad(params, "flax"))
    with pytest.raises(ValueError, match="attention_impl='flash'"):
        ViT(variant="mu/4", attention_impl="flash").init(jax.random.key(0), IMAGES)
