"""Truncation (psi) in the GAN's one sampler: psi = 1 is G's own samples bitwise, psi = 0 one
image per caption whatever the noise, the spread of the style vectors shrinks with psi, and
bad values are refused early with a clear error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.tasks import adversarial
from multimodal_jax.tasks import truncation
from tests import tiny_gan

CAPTIONS = 3
SAMPLES = 16  # noise vectors per caption


def _noise_and_captions(setup, seed: int = 0):
    """``SAMPLES`` noise vectors for each of ``CAPTIONS`` token rows, caption-major."""
    z = jax.random.normal(jax.random.key(seed), (CAPTIONS * SAMPLES, setup.z_dim))
    tokens = tiny_gan.fake_batch(CAPTIONS, seed)["tokens"]
    return z, jnp.repeat(tokens, SAMPLES, axis=0)


def _sample(setup, state, z, raw, psi):
    fn = jax.jit(lambda p, f, z, raw: adversarial.generate(setup, p, f, z, raw, psi))
    return np.asarray(fn(state.params["g"], state.frozen, z, raw))


def _perturbed(state):
    """G with random (not zero-initialised) modulation, so that every part of ``w`` matters."""
    g = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(5), p.shape),
                     state.params["g"])
    return state.replace(params={**state.params, "g": g})


@pytest.mark.parametrize("kind", ["text", "class"])
def test_psi_one_is_the_generators_own_samples_bitwise(kind):
    _, setup, state = tiny_gan.setup_and_state(kind)
    state = _perturbed(state)
    z = jax.random.normal(jax.random.key(1), (8, setup.z_dim))
    raw = (jnp.arange(8) if kind == "class" else tiny_gan.fake_batch(8)["tokens"])
    own = jax.jit(lambda p, f, z, raw: setup.generator.apply(  # the sampler before psi existed
        {"params": p}, z, adversarial.encode_condition(setup, f, raw)))
    np.testing.assert_array_equal(_sample(setup, state, z, raw, 1.0),
                                  own(state.params["g"], state.frozen, z, raw))
    cond = adversarial.encode_condition(setup, state.frozen, raw)
    variables = {"params": state.params["g"]}
    own = jax.jit(setup.generator.apply)(variables, z, cond)
    halves = jax.jit(lambda v, z, c: setup.generator.apply(
        v, setup.generator.apply(v, z, c, method="style"), method="synthesis"))(variables, z, cond)
    np.testing.assert_array_equal(halves, own)


def test_generator_params_keep_their_names():
    """Checkpoints written before G was split into style / synthesis still load."""
    _, _, state = tiny_gan.setup_and_state("text")
    assert sorted(state.params["g"]) == ["block_0", "condition", "mapping_0", "out_norm", "start",
                                         "to_rgb"]


def test_psi_zero_draws_one_image_per_caption_whatever_the_noise():
    _, setup, state = tiny_gan.setup_and_state("text")
    state = _perturbed(state)
    z, raw = _noise_and_captions(setup)
    images = _sample(setup, state, z, raw, 0.0).reshape((CAPTIONS, SAMPLES, -1))
    np.testing.assert_allclose(images, np.broadcast_to(images[:, :1], images.shape), atol=1e-6)
    assert np.abs(images[0, 0] - images[1, 0]).max() > 1e-3  # captions still differ
    untruncated = _sample(setup, state, z, raw, 1.0).reshape(images.shape)
    assert np.abs(untruncated[:, 1:] - untruncated[:, :1]).max() > 1e-3  # the noise did matter


def test_the_spread_of_w_shrinks_in_proportion_to_psi():
    _, setup, state = tiny_gan.setup_and_state("text")
    state = _perturbed(state)
    z, raw = _noise_and_captions(setup)
    variables, generator = {"params": state.params["g"]}, setup.generator
    cond = adversarial.encode_condition(setup, state.frozen, raw)
    w = generator.apply(variables, z, cond, method="style")
    w_mean = truncation.conditional_mean_style(generator, variables, cond, setup.z_dim)
    spreads = []
    for psi in (0.0, 0.25, 0.5, 0.75, 1.0):
        moved = np.asarray(truncation.truncate(w, w_mean, psi)).reshape(CAPTIONS, SAMPLES, -1)
        spreads.append(moved.std(axis=1).mean())
    assert spreads[0] < 1e-6 and np.all(np.diff(spreads) > 0)
    np.testing.assert_allclose(np.asarray(spreads) / spreads[-1], [0, 0.25, 0.5, 0.75, 1],
                               atol=1e-5)


def test_a_captions_mean_style_does_not_depend_on_its_batch():
    _, setup, state = tiny_gan.setup_and_state("text")
    state = _perturbed(state)
    tokens = tiny_gan.fake_batch(4)["tokens"]
    cond = adversarial.encode_condition(setup, state.frozen, tokens)
    variables = {"params": state.params["g"]}
    together = truncation.conditional_mean_style(setup.generator, variables, cond, setup.z_dim)
    alone = truncation.conditional_mean_style(setup.generator, variables, cond[2:3], setup.z_dim)
    np.testing.assert_allclose(together[2:3], alone, rtol=1e-5, atol=1e-6)
    assert together.shape == (4, setup.generator.style_dim)
    noise = truncation.mean_noise(setup.z_dim)  # it is the mean over that fixed noise
    direct = setup.generator.apply(variables, noise, jnp.repeat(cond[:1], len(noise), axis=0),
                                   method="style").mean(axis=0)
    np.testing.assert_allclose(together[0], direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("psi", [-0.1, 1.5, float("nan")])
def test_psi_outside_zero_one_is_refused_with_the_field_named(psi):
    config = tiny_gan.tiny_gan_config()
    config.evaluation.psi = psi
    with pytest.raises(ValueError, match=r"config.evaluation.psi=.*must be a number in \[0, 1\]"):
        adversarial.AdversarialTask.check_config(config)


@pytest.mark.parametrize("psi", ["0.7", True, None])
def test_psi_that_is_not_a_number_is_refused(psi):
    with pytest.raises(ValueError, match=r"--psi=.*must be a number in \[0, 1\]"):
        truncation.check_psi(psi, "--psi")


def test_configs_without_a_psi_field_sample_untruncated():
    config = tiny_gan.tiny_gan_config()
    del config.evaluation["psi"]
    adversarial.AdversarialTask.check_config(config)  # recorded before psi existed: 1
    assert truncation.check_psi(0, "psi") == 0.0 and truncation.check_psi(1, "psi") == 1.0
