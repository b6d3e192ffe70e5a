"""The projected discriminator (``config.gan.discriminator="projected"``) on the tiny setup:
heads on the frozen image tower's token maps score images and mismatched captions, a train step
runs on 8 devices (pmap == mesh), G's gradient reaches it through the frozen tower, and the tower
itself never changes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.models import projected_discriminator
from multimodal_jax.parallel import drivers
from multimodal_jax.tasks import adversarial
from tests import tiny_gan

BATCH = 16


def _projected(**gan_overrides):
    return tiny_gan.setup_and_state("text", discriminator="projected", **gan_overrides)


def test_heads_read_the_towers_token_maps_and_score_mismatched_captions():
    _, setup, state = _projected()
    assert isinstance(setup.discriminator, projected_discriminator.ProjectedDiscriminator)
    assert setup.feature_blocks == (0,)  # the tiny tower's only block: () = all of them
    batch = tiny_gan.fake_batch(4)
    features = adversarial.d_input(setup, state.frozen, batch["image"])
    assert len(features) == 1 and features[0].shape[0] == 4 and features[0].ndim == 3
    cond = adversarial.condition(setup, state.frozen, batch)
    scores, mismatched = adversarial.discriminate(setup, state.params["d"], state.batch_stats,
                                                  state.frozen, batch["image"], cond, cond[::-1])
    assert scores.shape == mismatched.shape == (4,)
    assert np.abs(np.asarray(scores - mismatched)).max() > 0  # the caption matters
    assert set(state.params["d"]) == {"head_0"} and "clip" not in state.params["d"]
    assert jax.tree.leaves(state.batch_stats["d"])  # spectral norm on the heads


def test_generators_gradient_flows_through_the_frozen_tower():
    _, setup, state = _projected(align_weight=0.0)  # the adversarial term alone
    batch = tiny_gan.fake_batch(4)
    keys = adversarial.device_keys(jax.random.key(0), 0, 0)
    cond, fake, pullback = adversarial.generate_for_step(setup, state.params["g"], state.frozen,
                                                         batch, keys)
    grads, _ = adversarial.generator_grads(fake, pullback, setup, state.params["d"],
                                           state.batch_stats, state.frozen, batch, cond, keys, 0.0)
    norms = jax.tree.map(lambda g: float(jnp.abs(g).max()), grads)
    assert norms["to_rgb"]["kernel"] > 0  # D sees G only through the tower
    assert norms["mapping_0"]["kernel"] > 0


@pytest.fixture(scope="module")
def steps():
    """Two steps under the mesh and the pmap driver on 8 devices, from one state."""
    _, setup, state = _projected()
    out = {}
    for name in ("mesh", "pmap"):
        driver = drivers.make_driver(name, adversarial.make_train_step(setup), donate=False)
        dstate = driver.put_state(state)
        for step in range(2):
            batch = driver.put_batch(tiny_gan.fake_batch(BATCH, seed=step))
            dstate, metrics = driver.step(dstate, batch, jax.random.key(1))
        out[name] = jax.device_get((dstate, metrics))
    return state, out


def test_a_projected_step_trains_g_and_the_heads_and_never_the_tower(steps):
    state, out = steps
    new, metrics = out["mesh"]
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    for part in ("g", "d"):
        moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), new.params[part],
                             state.params[part])
        assert max(jax.tree.leaves(moved)) > 1e-5, part
    jax.tree.map(np.testing.assert_array_equal, new.frozen, jax.device_get(state.frozen))


def test_pmap_equals_mesh_with_the_projected_discriminator(steps):
    _, out = steps
    (mesh_state, mesh_metrics), (pmap_state, pmap_metrics) = out["mesh"], out["pmap"]
    pmap_state = jax.tree.map(lambda x: x[0], pmap_state)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    jax.tree.map(close, pmap_metrics, mesh_metrics)
    jax.tree.map(close, pmap_state.params, mesh_state.params)
    jax.tree.map(close, pmap_state.batch_stats, mesh_state.batch_stats)


def test_projected_discriminator_config_errors_are_clear():
    config = tiny_gan.tiny_gan_config()
    config.gan.discriminator = "stylegan"
    with pytest.raises(ValueError, match=r"config.gan.discriminator='stylegan'; choose one of"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config(kind="class")
    config.gan.discriminator = "projected"
    with pytest.raises(ValueError, match="needs config.condition.kind='text'"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.gan.discriminator = "projected"
    config.model.projected.blocks = (0, 3)
    clip, _ = tiny_gan.random_clip()
    with pytest.raises(ValueError, match=r"has blocks 0 to 0"):
        adversarial.make_setup(config, clip)
