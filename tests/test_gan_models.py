"""GAN modules, DiffAugment and losses: shapes, the data range, conditions, spectral-norm
statistics, differentiable augmentation and the loss formulas."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.data import diffaugment
from multimodal_jax.models import gan
from multimodal_jax.tasks import adversarial_losses
from multimodal_jax.tasks import contrastive_losses

B = 4


def _generator(**kw):
    return gan.Generator(**{**dict(resolution=16, widths=(16, 8, 8), style_dim=8, cond_dim=8,
                                   groups=4), **kw})


@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_output_shape_and_data_range(num_classes):
    mean, std = (0.48, 0.45, 0.40), (0.27, 0.26, 0.28)  # CLIP's normalisation
    g = _generator(num_classes=num_classes, mean=mean, std=std)
    z = jax.random.normal(jax.random.key(0), (B, 8))
    c = jnp.arange(B) if num_classes else jax.random.normal(jax.random.key(1), (B, 6))
    params = jax.jit(g.init)(jax.random.key(2), z, c)["params"]
    params = jax.tree.map(lambda p: p + 0.5 * jax.random.normal(jax.random.key(3), p.shape), params)
    apply = jax.jit(lambda p, c: g.apply({"params": p}, z, c))
    x = apply(params, c)
    assert x.shape == (B, 16, 16, 3)
    pixels = np.asarray(x) * np.asarray(std) + np.asarray(mean)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and pixels.std() > 0.01
    other = apply(params, c[::-1])
    assert np.abs(np.asarray(other - x)).max() > 1e-3  # the condition matters


@pytest.mark.parametrize("height,width", [(4, 4), (3, 5)])
def test_upsample_conv_is_conv_after_nearest_upsampling(height, width):
    """G's low-resolution form of conv3x3(upsample(x)): nn.Conv's parameters (same names, same
    initial values) and its outputs and gradients, borders included."""
    x = jax.random.normal(jax.random.key(0), (2, height, width, 5))
    fast, plain = gan.UpsampleConv(6), nn.Conv(6, (3, 3))
    params = fast.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, plain.init(jax.random.key(1), gan.upsample(x)))
    np.testing.assert_array_equal(params["params"]["kernel"],
                                  plain.init(jax.random.key(1), gan.upsample(x))["params"]["kernel"])
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)

    def loss(module, params, x, upsampled):
        y = module.apply(params, gan.upsample(x) if upsampled else x)
        return jnp.sum(jnp.sin(y)), y

    (_, want), want_grads = jax.value_and_grad(loss, (1, 2), has_aux=True)(plain, params, x, True)
    (_, got), got_grads = jax.value_and_grad(loss, (1, 2), has_aux=True)(fast, params, x, False)
    assert got.shape == (2, 2 * height, 2 * width, 6)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-5)


def test_modulated_norm_is_group_norm_then_modulation():
    """The folded form equals ``nn.GroupNorm`` (no affine) then ``x * (1 + gamma) + beta``."""
    x = 3 * jax.random.normal(jax.random.key(0), (2, 4, 4, 12)) + 1
    w = jax.random.normal(jax.random.key(1), (2, 5))
    norm = gan.ModulatedNorm(groups=8)  # gcd(8, 12) = 4 groups
    params = norm.init(jax.random.key(2), x, w)
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(3), p.shape), params)
    gamma, beta = jnp.split(nn.Dense(24).apply({"params": params["params"]["Dense_0"]}, w), 2, -1)
    grouped = nn.GroupNorm(num_groups=4, use_bias=False, use_scale=False)
    want = grouped.apply({}, x) * (1 + gamma[:, None, None]) + beta[:, None, None]
    np.testing.assert_allclose(norm.apply(params, x, w), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_discriminator_scores_mismatched_conditions_and_sn_stats(spectral_norm):
    d = gan.Discriminator(resolution=16, widths=(8, 16), num_classes=10, spectral_norm=spectral_norm)
    x = jax.random.normal(jax.random.key(0), (B, 16, 16, 3))
    c = jnp.arange(B)
    variables = jax.jit(d.init)(jax.random.key(1), x, c)
    assert ("batch_stats" in variables) == spectral_norm
    scores, mismatched = jax.jit(d.apply)(variables, x, c, c[::-1])
    assert scores.shape == mismatched.shape == (B,)
    np.testing.assert_allclose(scores, jax.jit(d.apply)(variables, x, c), rtol=1e-6)
    if spectral_norm:
        _, new = jax.jit(lambda v: d.apply(v, x, c, update_stats=True, mutable=["batch_stats"]))(
            variables)
        moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                             new["batch_stats"], variables["batch_stats"])
        assert max(jax.tree.leaves(moved)) > 0


def test_spectral_norm_bounds_the_layer_gain():
    """After power iterations the normalised kernel of a layer has spectral norm ~1."""
    d = gan.Discriminator(resolution=8, widths=(4,), num_classes=3)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    c = jnp.zeros(2, jnp.int32)
    variables = jax.jit(d.init)(jax.random.key(1), x, c)
    update = jax.jit(lambda v: d.apply(v, x, c, update_stats=True, mutable=["batch_stats"])[1])
    for _ in range(30):
        variables = {**variables, **update(variables)}
    kernel = variables["params"]["block_0"]["conv2"]["kernel"]
    sigma = variables["batch_stats"]["block_0"]["sn_conv2"]["conv2/kernel/sigma"]
    true = np.linalg.svd(np.asarray(kernel).reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, true, rtol=1e-3)


def test_resolution_and_widths_errors_are_clear():
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k"):
        gan.num_blocks(24, (8, 8), "G")
    with pytest.raises(ValueError, match="needs 3 widths"):
        gan.num_blocks(16, (8, 8), "G")


def test_diffaugment_shapes_keys_and_gradients():
    x = jax.random.normal(jax.random.key(0), (B, 16, 16, 3))
    a = diffaugment.diff_augment(x, jax.random.key(1))
    b = diffaugment.diff_augment(x, jax.random.key(2))
    assert a.shape == x.shape and np.abs(np.asarray(a - b)).max() > 0.1
    np.testing.assert_array_equal(a, diffaugment.diff_augment(x, jax.random.key(1)))
    grad = jax.grad(lambda v: jnp.sum(diffaugment.diff_augment(v, jax.random.key(1)) ** 2))(x)
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    with pytest.raises(ValueError, match="Unknown DiffAugment"):
        diffaugment.diff_augment(x, jax.random.key(1), ("rotate",))


def test_translation_moves_content_and_cutout_zeroes_a_square():
    x = jnp.zeros((64, 16, 16, 1)).at[:, 8, 8, 0].set(1.0)
    u = jax.random.uniform(jax.random.key(0), (64, 2))
    moved = np.asarray(diffaugment.translation(x, u))
    positions = np.argwhere(moved[..., 0] == 1.0)
    assert len(positions) == 64 and moved.sum() == 64  # the dot stays whole (shifts <= 2 px)
    assert np.abs(positions[:, 1:] - 8).max() == 2 and len({tuple(p[1:]) for p in positions}) > 5
    edge = np.asarray(diffaugment.translation(jnp.ones((64, 16, 16, 1)), u))
    assert edge.sum(axis=(1, 2, 3)).min() < 16 * 16  # what comes in from outside is zero
    cut = np.asarray(diffaugment.cutout(jnp.ones((32, 16, 16, 1)), u[:32]))
    zeros = (cut == 0).sum(axis=(1, 2, 3))
    assert zeros.max() == 64 and zeros.min() > 0  # an 8x8 square, clipped at the border


def test_losses():
    s = jnp.array([-2.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(adversarial_losses.d_real(s, "hinge"), np.mean([3, 1, 0.5, 0]))
    np.testing.assert_allclose(adversarial_losses.d_fake(s, "hinge"), np.mean([0, 1, 1.5, 4]))
    np.testing.assert_allclose(adversarial_losses.g_adversarial(s, "hinge"), -np.mean(s))
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    np.testing.assert_allclose(adversarial_losses.d_real(s, "non_saturating"), softplus(-s).mean(), rtol=1e-6)
    np.testing.assert_allclose(adversarial_losses.d_fake(s, "non_saturating"), softplus(s).mean(), rtol=1e-6)
    np.testing.assert_allclose(adversarial_losses.g_adversarial(s, "non_saturating"), softplus(-s).mean(),
                               rtol=1e-6)
    grads = jnp.ones((2, 3, 3, 1)) * jnp.array([1.0, 2.0])[:, None, None, None]
    np.testing.assert_allclose(adversarial_losses.r1_penalty(grads), (9 + 36) / 2)
    np.testing.assert_allclose(adversarial_losses.alignment(jnp.array([[2.0, 0.0]]), jnp.array([[0.0, 1.0]])), 1.0)
    with pytest.raises(ValueError, match="Unknown adversarial loss"):
        adversarial_losses.d_real(s, "wasserstein")


def test_contrastive_alignment_is_clips_loss_and_spares_duplicate_captions():
    """With distinct captions it is CLIP's symmetric cross-entropy (contrastive_losses); where
    two examples share a caption, swapping their images changes nothing (neither is pushed
    away from the other's copy of its own caption)."""
    keys = jax.random.split(jax.random.key(3), 2)
    texts = jax.random.normal(keys[0], (6, 5))
    images = texts + 0.3 * jax.random.normal(keys[1], (6, 5))  # each near its own caption
    unit = lambda v: v / jnp.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    distinct = jnp.eye(6, dtype=bool)
    expected, _ = contrastive_losses.softmax_contrastive_loss(unit(images), unit(texts), 7.0)
    np.testing.assert_allclose(
        adversarial_losses.contrastive_alignment(images, texts, 7.0, distinct), expected, rtol=1e-6)
    texts = texts.at[1].set(texts[0])  # examples 0 and 1 share a caption
    images = images.at[1].set(texts[0] - 0.2 * texts[3])
    same = distinct.at[0, 1].set(True).at[1, 0].set(True)
    swapped = images[jnp.array([1, 0, 2, 3, 4, 5])]
    loss = adversarial_losses.contrastive_alignment(images, texts, 7.0, same)
    np.testing.assert_allclose(adversarial_losses.contrastive_alignment(swapped, texts, 7.0, same),
                               loss, rtol=1e-6)
    other = images[jnp.array([2, 1, 0, 3, 4, 5])]  # swapping distinct captions' images costs
    assert float(adversarial_losses.contrastive_alignment(other, texts, 7.0, same)) > float(loss)


def test_alignment_to_real_pulls_only_up_to_the_real_images_cosine():
    """Each generated image is pulled toward its caption until it is as near as the real image
    of that caption: below that the gradient is the cosine pull's, beyond it zero; the real
    images get no gradient (they are the reference, not a parameter)."""
    text = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    real = jnp.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])  # cos 0.707 with each caption
    fake = jnp.array([[1.0, 0.1], [1.0, 3.0], [3.0, 1.0]])  # nearer, further, further
    cos = lambda e: np.sum(e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
                           * text / np.linalg.norm(text, axis=1, keepdims=True), axis=1)
    want = np.mean(np.maximum(cos(np.asarray(real)) - cos(np.asarray(fake)), 0))
    np.testing.assert_allclose(adversarial_losses.alignment_to_real(fake, real, text), want, rtol=1e-6)
    assert cos(np.asarray(fake))[0] > cos(np.asarray(real))[0] and want > 0
    g_fake, g_real = jax.grad(adversarial_losses.alignment_to_real, argnums=(0, 1))(fake, real, text)
    assert np.all(np.asarray(g_fake[0]) == 0) and np.abs(np.asarray(g_fake[1:])).min() > 0
    assert np.all(np.asarray(g_real) == 0)
    pull = jax.grad(adversarial_losses.alignment)(fake[1:], text[1:])  # the plain pull's gradient
    np.testing.assert_allclose(g_fake[1:] * 3, pull * 2, rtol=1e-5)  # (means over 3 and 2)
