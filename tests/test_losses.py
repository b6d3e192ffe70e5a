"""The contrastive losses over 8 devices equal the single-device full-batch ones (values and
gradients), and match a plain numpy reference."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.tasks import contrastive_losses


def _embeddings(n=16, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2, n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True))


def _loss_fn(kind):
    def fn(img, txt, axis_name):
        if kind == "softmax":
            return contrastive_losses.softmax_contrastive_loss(img, txt, 10.0, axis_name)[0]
        return contrastive_losses.sigmoid_contrastive_loss(img, txt, 10.0, -5.0, axis_name)[0]
    return fn


def _numpy_reference(kind, img, txt):
    logits = 10.0 * img.astype(np.float64) @ txt.astype(np.float64).T
    n = len(img)
    if kind == "softmax":
        log_sm = lambda z: z - np.log(np.exp(z).sum(1, keepdims=True))  # noqa: E731
        return -(np.trace(log_sm(logits)) + np.trace(log_sm(logits.T))) / (2 * n)
    z = 2 * np.eye(n) - 1
    return np.sum(np.log1p(np.exp(-z * (logits - 5.0)))) / n


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_loss_matches_numpy(kind):
    img, txt = _embeddings()
    got = _loss_fn(kind)(img, txt, None)
    np.testing.assert_allclose(got, _numpy_reference(kind, img, txt), rtol=1e-5)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_eight_devices_equal_one(kind):
    assert jax.device_count() == 8
    img, txt = _embeddings(n=32)
    fn = _loss_fn(kind)
    single_loss, single_grads = jax.value_and_grad(fn, argnums=(0, 1))(img, txt, None)

    def sharded(img, txt):
        share, grads = jax.value_and_grad(fn, argnums=(0, 1))(img, txt, mesh_lib.AXIS)
        return jax.lax.psum(share, mesh_lib.AXIS), grads

    mesh = mesh_lib.data_mesh()
    run = jax.jit(jax.shard_map(sharded, mesh=mesh, in_specs=(P("data"), P("data")),
                                out_specs=(P(), (P("data"), P("data")))))
    put = lambda x: jax.device_put(x, jax.sharding.NamedSharding(mesh, P("data")))  # noqa: E731
    loss, grads = run(put(img), put(txt))
    np.testing.assert_allclose(loss, single_loss, rtol=1e-6)
    for got, want in zip(grads, single_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(single_grads[0])).max() > 1e-4  # the check is not vacuous

    pmapped = jax.pmap(sharded, axis_name=mesh_lib.AXIS)
    loss_p, grads_p = pmapped(img.reshape(8, 4, -1), txt.reshape(8, 4, -1))
    np.testing.assert_allclose(loss_p[0], single_loss, rtol=1e-6)
    np.testing.assert_allclose(grads_p[0].reshape(32, -1), single_grads[0], rtol=1e-5, atol=1e-6)
