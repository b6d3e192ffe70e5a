"""Pure GAN losses: hinge and non-saturating adversarial terms, the R1 penalty and the
CLIP-alignment term. Each takes one device's values and returns that device's mean; the
train step averages them (and their gradients) over devices."""

import jax
import jax.numpy as jnp

ADVERSARIAL = ("hinge", "non_saturating")


def check_kind(kind: str, where: str = "") -> None:
    """``ValueError`` unless ``kind`` is one of ``ADVERSARIAL``; ``where`` names its field."""
    if kind not in ADVERSARIAL:
        name = f"{where}={kind!r}" if where else f"Unknown adversarial loss {kind!r}"
        raise ValueError(f"{name}; choose one of {ADVERSARIAL}.")


def d_real(scores, kind: str):
    """D's loss on what must count as real: ``relu(1 - s)`` (hinge) or ``softplus(-s)``."""
    check_kind(kind)
    return jnp.mean(jax.nn.relu(1 - scores) if kind == "hinge" else jax.nn.softplus(-scores))


def d_fake(scores, kind: str, weights=None):
    """D's loss on what must count as fake (generated images, mismatched captions):
    ``relu(1 + s)`` (hinge) or ``softplus(s)``; with ``weights``, their weighted mean (0 where
    no weight is positive)."""
    check_kind(kind)
    per_example = jax.nn.relu(1 + scores) if kind == "hinge" else jax.nn.softplus(scores)
    if weights is None:
        return jnp.mean(per_example)
    return jnp.sum(weights * per_example) / jnp.maximum(jnp.sum(weights), 1.0)


def g_adversarial(scores, kind: str):
    """G's loss on D's scores of its images: ``-s`` (hinge) or ``softplus(-s)``."""
    check_kind(kind)
    return jnp.mean(-scores if kind == "hinge" else jax.nn.softplus(-scores))


def r1_penalty(input_grads):
    """R1 (Mescheder et al. 2018): the mean over examples of ``||dD(x)/dx||^2`` on real
    images (scale it by ``gamma / 2``)."""
    return jnp.mean(jnp.sum(jnp.square(input_grads), axis=tuple(range(1, input_grads.ndim))))


def alignment(image_emb, text_emb):
    """Mean cosine distance ``1 - cos`` between each image's and its caption's embedding."""
    unit = lambda v: v * jax.lax.rsqrt(jnp.sum(v * v, axis=-1, keepdims=True) + 1e-12)  # noqa: E731
    return jnp.mean(1 - jnp.sum(unit(image_emb) * unit(text_emb), axis=-1))
