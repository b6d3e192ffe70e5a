"""The contrastive train step gives the same parameters under pmap (8 devices), the mesh
driver (8 devices) and one device on the whole batch, for both losses."""

import jax
import numpy as np
import pytest

from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.tasks import contrastive
from tests import tiny


def _run(config, driver_name, devices, steps=3):
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    state = contrastive.create_state(config, model, jax.random.key(0))
    driver = drivers.make_driver(driver_name, contrastive.make_train_step(config),
                                  mesh=mesh_lib.data_mesh(devices))
    state = driver.put_state(state)
    for step in range(steps):
        batch = tiny.fake_batch(config.batch_size, config.data.image_size,
                                config.tokenizer.max_len, seed=step)
        state, metrics = driver.step(state, driver.put_batch(batch), jax.random.key(1))
    return jax.device_get(driver.get_state(state).params), jax.device_get(metrics)


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_pmap_equals_mesh_equals_single_device(loss):
    config = tiny.tiny_contrastive_config(loss)
    single, m1 = _run(config, "mesh", jax.devices()[:1])
    mesh, m8 = _run(config, "mesh", jax.devices())
    pmap, mp = _run(config, "pmap", jax.devices())
    np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(mp["loss"], m1["loss"], rtol=1e-5)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), single,
                                         jax.device_get(_init_params(config))))
    assert max(moved) > 1e-4  # training changed the parameters, so equality means something
    for other in (mesh, pmap):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     other, single)


def _init_params(config):
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    return contrastive.create_state(config, model, jax.random.key(0)).params
