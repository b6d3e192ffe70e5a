"""The optimiser every task shares: AdamW, linear warmup + cosine decay, global-norm clipping.

Weight decay touches only ``kernel`` leaves (dense, attention and convolution weights), never
norms, biases, embeddings, position embeddings, class tokens or the temperature.
"""

import jax
import ml_collections
import optax


def decay_mask(params):
    """True for the leaves that get weight decay: those named ``kernel``."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to ``config.lr``, then cosine decay to ``lr * end_lr_ratio``."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=config.lr, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=config.lr * config.end_lr_ratio)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """AdamW with the schedule above and optional clipping (``config.grad_clip_norm``)."""
    adamw = optax.adamw(
        learning_rate_schedule(config, total_steps), b1=config.b1, b2=config.b2, eps=config.eps,
        weight_decay=config.weight_decay, mask=decay_mask)
    if config.get("grad_clip_norm"):
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw)
    return adamw


def default_config() -> ml_collections.ConfigDict:
    """The optimiser fields, with values that suit small contrastive runs."""
    return ml_collections.ConfigDict(dict(
        lr=1e-3, warmup_steps=100, end_lr_ratio=0.0, b1=0.9, b2=0.98, eps=1e-6,
        weight_decay=0.1, grad_clip_norm=1.0))
