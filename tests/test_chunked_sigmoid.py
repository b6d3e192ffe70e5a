"""The chunked sigmoid loss equals SigLIP's full-matrix loss (value, gradients, best texts) on
one device and around a ring of 4 devices, without building the [b, G] logits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from multimodal_jax.models.two_tower import l2_normalize
from multimodal_jax.tasks import contrastive_losses

AXIS = "data"


def _embeddings(batch=16, dim=8, seed=0):
    ki, kt = jax.random.split(jax.random.key(seed))
    images = l2_normalize(jax.random.normal(ki, (batch, dim)))
    texts = l2_normalize(images + 0.7 * jax.random.normal(kt, (batch, dim)))
    return images, texts


def _full(images, texts, scale, bias, axis_name=None):
    share, logits = contrastive_losses.sigmoid_contrastive_loss(images, texts, scale, bias, axis_name)
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * images.shape[0]
    return share, jnp.argmax(logits, axis=1), offset


def _chunked(images, texts, scale, bias, axis_name=None, chunk_size=None):
    return contrastive_losses.chunked_sigmoid_contrastive_loss(images, texts, scale, bias, axis_name, chunk_size)


@pytest.mark.parametrize("chunk_size", [None, 4, 1])
def test_one_device_equals_full_loss(chunk_size):
    images, texts = _embeddings()
    scale, bias = jnp.float32(10.0), jnp.float32(-3.0)
    full = lambda i, t, s, b: _full(i, t, s, b)[0]  # noqa: E731
    chunked = lambda i, t, s, b: _chunked(i, t, s, b, chunk_size=chunk_size)[0]  # noqa: E731
    np.testing.assert_allclose(chunked(images, texts, scale, bias), full(images, texts, scale, bias),
                               rtol=1e-6)
    g_full = jax.grad(full, argnums=(0, 1, 2, 3))(images, texts, scale, bias)
    g_chunked = jax.grad(chunked, argnums=(0, 1, 2, 3))(images, texts, scale, bias)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_chunked, g_full)
    _, best = _chunked(images, texts, scale, bias, chunk_size=chunk_size)
    np.testing.assert_array_equal(best, _full(images, texts, scale, bias)[1])
    if chunk_size:  # no [b, G] logits anywhere, forward or backward
        jaxpr = str(jax.make_jaxpr(jax.grad(chunked))(images, texts, scale, bias))
        assert "16,16" not in jaxpr.replace(" ", "") and f"16,{chunk_size}]" in jaxpr.replace(" ", "")


def test_ring_over_four_devices_equals_full_loss():
    mesh = Mesh(np.asarray(jax.devices()[:4]), (AXIS,))
    images, texts = _embeddings(batch=16)
    scale, bias = jnp.float32(10.0), jnp.float32(-3.0)

    def per_device(fn, images, texts, scale, bias):
        def total(i, t, s, b):
            return jax.lax.psum(fn(i, t, s, b, AXIS)[0], AXIS)
        value, grads = jax.value_and_grad(total, argnums=(0, 1, 2, 3))(
            images, texts, jax.lax.pcast(scale, AXIS, to="varying"),
            jax.lax.pcast(bias, AXIS, to="varying"))
        return value, grads[0], grads[1], jax.lax.psum(grads[2], AXIS), jax.lax.psum(grads[3], AXIS)

    specs = dict(mesh=mesh, in_specs=(P(AXIS), P(AXIS), P(), P()),
                 out_specs=(P(), P(AXIS), P(AXIS), P(), P()))
    full = jax.jit(jax.shard_map(functools.partial(per_device, _full), **specs))
    chunked = jax.jit(jax.shard_map(functools.partial(per_device, functools.partial(
        _chunked, chunk_size=2)), **specs))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 chunked(images, texts, scale, bias), full(images, texts, scale, bias))

    best = jax.jit(jax.shard_map(lambda i, t: _chunked(i, t, scale, bias, AXIS)[1], mesh=mesh,
                                 in_specs=(P(AXIS), P(AXIS)), out_specs=P(AXIS)))(images, texts)
    np.testing.assert_array_equal(best, _full(images, texts, scale, bias)[1])
