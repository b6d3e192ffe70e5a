"""Gradient accumulation over micro-batches, for any task's step: the same update from a batch
too large for the devices' memory, at the cost of ``steps`` sequential passes.

``value_and_grad(loss_fn, params, batch, steps)`` runs ``loss_fn(params, micro_batch)`` on
``steps`` micro-batches in a ``lax.scan`` and returns the mean value, aux and gradients. Each
device splits its rows *strided*: micro-batch ``k`` holds its rows ``k, k + steps, ...``, so
over all devices micro-batch ``k`` is the global rows ``r`` with ``r % steps == k``, in order,
whatever the number of devices or processes.

What that means for a loss over the batch (the contrastive task): each micro-batch is its own
contrastive problem. Its negatives are the other ``batch_size / steps - 1`` examples of the
same micro-batch, gathered from all devices, not the whole batch, and the gradient is the mean
of the micro-batches' gradients. Accumulation thus trades memory for a smaller effective
contrastive batch; only a per-example loss (classification) gets the full batch's gradient.
"""

from typing import Callable

import jax
import jax.numpy as jnp


def split(batch, steps: int):
    """``[b, ...]`` leaves -> ``[steps, b / steps, ...]``, micro-batch ``k`` = rows ``k::steps``."""
    def strided(x):
        if x.shape[0] % steps:
            raise ValueError(f"The per-device batch of {x.shape[0]} does not split into "
                             f"{steps} micro-batches: make batch_size a multiple of "
                             f"accum_steps x devices ({steps} x the device count).")
        return jnp.swapaxes(x.reshape((x.shape[0] // steps, steps) + x.shape[1:]), 0, 1)
    return jax.tree.map(strided, batch)


def value_and_grad(loss_fn: Callable, params, batch, steps: int = 1, has_aux: bool = True):
    """``jax.value_and_grad(loss_fn, has_aux)(params, batch)`` averaged over ``steps``
    micro-batches (plain ``value_and_grad`` when ``steps == 1``). Aux leaves are averaged too,
    so return scalars (metrics) from ``loss_fn`` rather than per-example arrays."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=has_aux)
    if steps == 1:
        return grad_fn(params, batch)

    def add(total, micro_batch):
        return jax.tree.map(jnp.add, total, grad_fn(params, micro_batch)), None

    micro = split(batch, steps)
    # The first micro-batch starts the sums, so they have its types (under shard_map, values
    # that vary over devices must stay typed as varying through the scan).
    first = grad_fn(params, jax.tree.map(lambda x: x[0], micro))
    total, _ = jax.lax.scan(add, first, jax.tree.map(lambda x: x[1:], micro))
    return jax.tree.map(lambda x: x / steps, total)
