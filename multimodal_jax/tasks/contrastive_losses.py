"""Contrastive losses over the global batch: softmax (CLIP) and sigmoid (SigLIP).

Each device holds ``b`` local image and text embeddings. With ``axis_name`` set, the other
side's embeddings are all-gathered (with gradient, as open_clip's ``gather_with_grad``) and
each device scores its own rows against the whole global batch of ``G = b * n`` items, its
positives sitting at columns ``axis_index * b + arange(b)``. Every function returns this
device's share of the global mean, so summing (``psum``) the shares over devices gives the
loss of the full batch; without ``axis_name`` that share is the loss itself.
"""

from typing import Optional

import jax
import jax.numpy as jnp
import optax

from multimodal_jax.models.two_tower import similarity_logits


def _gather(x, axis_name: Optional[str]):
    """All-gathers ``x`` along the batch over ``axis_name`` (identity without one)."""
    return x if axis_name is None else jax.lax.all_gather(x, axis_name, tiled=True)


def _positive_columns(local_batch: int, axis_name: Optional[str]):
    """Column index, in the global batch, of each local row's positive pair."""
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
    return offset + jnp.arange(local_batch)


def softmax_contrastive_loss(image_emb, text_emb, logit_scale, axis_name: Optional[str] = None):
    """CLIP's symmetric cross-entropy; returns (this device's share of the loss, i2t logits)."""
    all_image, all_text = _gather(image_emb, axis_name), _gather(text_emb, axis_name)
    local, global_batch = image_emb.shape[0], all_text.shape[0]
    labels = _positive_columns(local, axis_name)
    i2t = similarity_logits(image_emb, all_text, logit_scale)
    t2i = similarity_logits(text_emb, all_image, logit_scale)
    ce = optax.softmax_cross_entropy_with_integer_labels
    loss = (jnp.sum(ce(i2t, labels)) + jnp.sum(ce(t2i, labels))) / (2 * global_batch)
    return loss, i2t


def sigmoid_contrastive_loss(image_emb, text_emb, logit_scale, logit_bias,
                             axis_name: Optional[str] = None):
    """SigLIP's pairwise sigmoid loss; returns (this device's share of the loss, logits).

    ``-1/G * sum_ij log sigmoid(z_ij * (scale * <x_i, y_j> + bias))`` with ``z_ij = +1`` for
    matching pairs and ``-1`` otherwise: each device sums its image rows against all texts.
    """
    all_text = _gather(text_emb, axis_name)
    local, global_batch = image_emb.shape[0], all_text.shape[0]
    logits = similarity_logits(image_emb, all_text, logit_scale, logit_bias)
    positives = jax.nn.one_hot(_positive_columns(local, axis_name), global_batch, dtype=logits.dtype)
    signs = 2 * positives - 1
    loss = -jnp.sum(jax.nn.log_sigmoid(signs * logits)) / global_batch
    return loss, logits


def in_batch_accuracy(logits, axis_name: Optional[str] = None):
    """Share of local image rows whose best-scoring text in the global batch is their own."""
    labels = _positive_columns(logits.shape[0], axis_name)
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def _varying(x, axis_name: Optional[str]):
    """``x`` typed as varying over ``axis_name`` where ``shard_map`` binds it (a loop carry
    keeps one type); unchanged elsewhere (no axis, ``pmap``-free code, ``vmap``)."""
    if axis_name is None or axis_name not in jax.sharding.get_abstract_mesh().manual_axes:
        return x
    return jax.lax.pcast(x, axis_name, to="varying")


def chunked_sigmoid_contrastive_loss(image_emb, text_emb, logit_scale, logit_bias,
                                     axis_name: Optional[str] = None,
                                     chunk_size: Optional[int] = None):
    """``sigmoid_contrastive_loss`` without ever building the ``[b, G]`` logits: the text
    embeddings travel around the devices (a ``ppermute`` ring, as in the SigLIP paper) and each
    device scores its ``b`` images against ``chunk_size`` texts at a time (default ``b``), so it
    holds ``[b, chunk_size]`` logits, whatever the global batch. Returns (this device's share of
    the loss, the global column of each local image's best-scoring text, for accuracy)."""
    local = image_emb.shape[0]
    chunk = chunk_size or local
    if local % chunk:
        raise ValueError(f"chunk_size={chunk} does not divide the per-device batch of {local}: "
                         "choose a divisor of it.")
    devices = 1 if axis_name is None else jax.lax.axis_size(axis_name)
    me = 0 if axis_name is None else jax.lax.axis_index(axis_name)
    rows = me * local + jnp.arange(local)  # each image's positive column

    @jax.checkpoint  # the backward pass recomputes each block rather than keeping them all
    def score_chunk(carry, start, texts, first_column):
        total, best_value, best_column = carry
        block = jax.lax.dynamic_slice_in_dim(texts, start, chunk)
        columns = first_column + start + jnp.arange(chunk)
        logits = similarity_logits(image_emb, block, logit_scale, logit_bias)
        signs = jnp.where(rows[:, None] == columns[None, :], 1.0, -1.0)
        total = total + jnp.sum(jax.nn.log_sigmoid(signs * logits))
        scores = jax.lax.stop_gradient(logits)
        value, column = jnp.max(scores, axis=1), columns[jnp.argmax(scores, axis=1)]
        better = (value > best_value) | ((value == best_value) & (column < best_column))
        return total, jnp.where(better, value, best_value), jnp.where(better, column, best_column)

    def score_texts(carry, texts, source):
        """Adds the ``local`` texts that started on device ``source``, chunk by chunk."""
        step = lambda c, start: (score_chunk(c, start, texts, source * local), None)  # noqa: E731
        return jax.lax.scan(step, carry, jnp.arange(0, local, chunk))[0]

    init = (jnp.zeros((), jnp.float32), jnp.full((local,), -jnp.inf, jnp.float32),
            jnp.zeros((local,), jnp.int32))
    carry = score_texts(jax.tree.map(lambda x: _varying(x, axis_name), init), text_emb, me)
    if devices > 1:
        ring = [(i, (i + 1) % devices) for i in range(devices)]

        def receive(state, k):
            carry, texts = state
            texts = jax.lax.ppermute(texts, axis_name, ring)  # now the texts of device me - k
            return (score_texts(carry, texts, (me - k) % devices), texts), None

        carry = jax.lax.scan(receive, (carry, text_emb), jnp.arange(1, devices))[0][0]
    total, _, best = carry
    return -total / (local * devices), best
