"""Micro-batch accumulation: a per-example loss gets the full batch's gradient; a contrastive
loss gets the mean over strided micro-batches, the same on 1 and 8 devices; the contrastive
step with accumulation and the chunked sigmoid loss equals the plain one."""

import jax
import jax.numpy as jnp
import numpy as np

from multimodal_jax.parallel import accumulate
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.tasks import contrastive
from multimodal_jax.tasks import contrastive_losses
from tests import tiny


def _close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def test_per_example_loss_gets_the_full_batch_gradient():
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(12, 3)).astype(np.float32), "y": rng.normal(size=12).astype(np.float32)}
    params = {"w": jnp.asarray([0.5, -1.0, 2.0]), "b": jnp.asarray(0.1)}

    def loss_fn(p, b):
        error = b["x"] @ p["w"] + p["b"] - b["y"]
        return jnp.mean(error ** 2), {"mean_error": jnp.mean(error)}

    full = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    _close(accumulate.value_and_grad(loss_fn, params, batch, steps=4), full)
    micro = accumulate.split(batch, 4)
    np.testing.assert_array_equal(micro["x"][1], batch["x"][1::4])  # strided micro-batches


def test_contrastive_loss_is_the_mean_over_micro_batches():
    rng = np.random.default_rng(1)
    emb = lambda: jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)  # noqa: E731
    batch = {"image": emb(), "text": emb()}
    params = {"scale": jnp.asarray(2.0)}

    def loss_fn(p, b):
        return contrastive_losses.softmax_contrastive_loss(b["image"], b["text"], p["scale"])[0], ()

    expected = [jax.value_and_grad(loss_fn, has_aux=True)(params, jax.tree.map(lambda x, k=k: x[k::2], batch))
                for k in range(2)]
    mean = jax.tree.map(lambda a, b: (a + b) / 2, *expected)
    _close(accumulate.value_and_grad(loss_fn, params, batch, steps=2), mean)


def _train(config, devices, steps=2):
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    driver = drivers.make_driver("mesh", contrastive.make_train_step(config),
                                  mesh_lib.data_mesh(devices))
    state = driver.put_state(contrastive.create_state(config, model, jax.random.key(0)))
    for step in range(steps):
        batch = tiny.fake_batch(config.batch_size, config.data.image_size,
                                config.tokenizer.max_len, seed=step)
        state, metrics = driver.step(state, driver.put_batch(batch), jax.random.key(1))
    return jax.device_get(state.params), jax.device_get(metrics)


def test_accumulated_chunked_step_is_the_same_on_1_and_8_devices():
    config = tiny.tiny_contrastive_config("sigmoid")
    config.accum_steps = 2
    one, m_one = _train(config, jax.devices()[:1])
    config.loss_chunk_size = 1  # the ring over 8 devices, one text at a time
    eight, m_eight = _train(config, jax.devices())
    np.testing.assert_allclose(m_eight["loss"], m_one["loss"], rtol=1e-5)
    np.testing.assert_allclose(m_eight["batch_accuracy"], m_one["batch_accuracy"])
    _close(eight, one, rtol=1e-4, atol=1e-5)
