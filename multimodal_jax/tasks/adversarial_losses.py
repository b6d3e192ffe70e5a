"""Pure GAN losses: hinge and non-saturating adversarial terms, the R1 penalty and the
CLIP-alignment terms (cosine, or contrastive over the batch's captions). Each takes one
device's values and returns that device's mean; the train step averages them (and their
gradients) over devices."""

import jax
import jax.numpy as jnp
import optax

from multimodal_jax.models import two_tower

ADVERSARIAL = ("hinge", "non_saturating")
ALIGNMENTS = ("cosine", "contrastive", "cosine_to_real")  # config.gan.align_loss


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
    return jnp.mean(1 - jnp.sum(two_tower.l2_normalize(image_emb) * two_tower.l2_normalize(text_emb), axis=-1))


def alignment_to_real(image_emb, real_emb, text_emb):
    """The cosine pull capped at the real image's own: ``relu(cos(real, text) - cos(image,
    text))``, averaged. G's image is pulled toward its caption only as far as the real image of
    that caption sits from it, so the frozen model's agreement cannot be bought beyond what real
    images earn (G's images otherwise end nearer their captions than real images, 0.93 against
    0.89 at step 2000 of the default: patterns the frozen tower reads, not shapes)."""
    text = two_tower.l2_normalize(text_emb)
    cos = lambda e: jnp.sum(two_tower.l2_normalize(e) * text, axis=-1)  # noqa: E731
    return jnp.mean(jax.nn.relu(jax.lax.stop_gradient(cos(real_emb)) - cos(image_emb)))


def contrastive_alignment(image_emb, text_emb, scale, same):
    """CLIP's symmetric cross-entropy between generated images and the batch's captions at the
    frozen model's ``scale`` (LAFITE's contrastive term for G): each image must be nearer its own
    caption than the other captions, not merely near it. ``same`` ``[B, B]`` (bool) marks
    pairs that ask for the same image: their probability is shared, never pushed apart."""
    logits = scale * two_tower.l2_normalize(image_emb) @ two_tower.l2_normalize(text_emb).T
    targets = same.astype(jnp.float32)
    targets = targets / jnp.sum(targets, axis=-1, keepdims=True)  # symmetric: rows = columns
    image_to_text = optax.softmax_cross_entropy(logits, targets)
    text_to_image = optax.softmax_cross_entropy(logits.T, targets)
    return (jnp.mean(image_to_text) + jnp.mean(text_to_image)) / 2


def check_alignment(kind: str, where: str = "config.gan.align_loss") -> None:
    """``ValueError`` unless ``kind`` is one of ``ALIGNMENTS``."""
    if kind not in ALIGNMENTS:
        raise ValueError(f"{where}={kind!r}; choose one of {ALIGNMENTS}.")
