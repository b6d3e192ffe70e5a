"""The optimiser every task shares: AdamW, linear warmup + cosine decay, global-norm clipping.

Weight decay touches only ``kernel`` leaves (dense, attention and convolution weights), never
norms, biases, embeddings, position embeddings, class tokens or the temperature.
"""

import jax
import ml_collections
import optax

from multimodal_jax import fields


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
    """AdamW with the schedule above, optional clipping (``config.grad_clip_norm``) and
    optional ``config.mu_dtype`` for the first moment (big_vision keeps it in bfloat16)."""
    adamw = optax.adamw(
        learning_rate_schedule(config, total_steps), b1=config.b1, b2=config.b2, eps=config.eps,
        weight_decay=config.weight_decay, mask=decay_mask,
        mu_dtype=config.get("mu_dtype") or None)  # "bfloat16": Adam's first moment in bf16
    if config.get("grad_clip_norm"):
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw)
    return adamw


def default_config() -> ml_collections.ConfigDict:
    """The optimiser fields, with values that suit small contrastive runs."""
    return ml_collections.ConfigDict(dict(
        lr=1e-3, warmup_steps=100, end_lr_ratio=0.0, b1=0.9, b2=0.98, eps=1e-6,
        weight_decay=0.1, grad_clip_norm=1.0))


OPTIONAL_FIELDS = ("mu_dtype", "layer_decay", "decay_from")  # beside default_config()'s
MU_DTYPES = (None, "", "float32", "bfloat16")


def check_config(block: ml_collections.ConfigDict, where: str = "config.optim") -> None:
    """An optimiser block (``default_config`` and its optional extras): known fields and
    numbers where numbers are read. A block of named optimisers (a GAN's ``g``, ``d``) is
    checked block by block."""
    if "lr" not in block:
        for name, sub in block.items():
            if isinstance(sub, ml_collections.ConfigDict):
                check_config(sub, f"{where}.{name}")
        return
    fields.check_known(block, list(default_config().keys()) + list(OPTIONAL_FIELDS), where)
    for name in set(block.keys()) - {"mu_dtype"}:
        value = block[name]
        if not (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))):
            raise ValueError(f"{where}.{name} must be a number, got {value!r} "
                             f"({type(value).__name__}).")
    if block.lr <= 0:
        raise ValueError(f"{where}.lr must be positive, got {block.lr}.")
    if not 0.0 <= block.get("decay_from", 1.0) <= 1.0:
        raise ValueError(f"{where}.decay_from must be in [0, 1] (the fraction of the run before "
                         f"the rate decays; 1 = constant), got {block.decay_from}.")
    if block.get("mu_dtype") not in MU_DTYPES:
        raise ValueError(f"{where}.mu_dtype={block.get('mu_dtype')!r}; choose 'bfloat16', "
                         "'float32' or ''.")


# --- Fine-tuning helpers (classification, LiT): frozen parameters, layer-wise lr decay. ---


def _names(path) -> list[str]:
    return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def freeze(tx: optax.GradientTransformation, trainable) -> optax.GradientTransformation:
    """``tx`` on the leaves where the bool tree ``trainable`` is True; the others get zero
    updates (exactly unchanged) and no optimiser state. Clipping inside ``tx`` sees only the
    trainable gradients."""
    labels = jax.tree.map(lambda t: "train" if t else "frozen", trainable)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def trainable_mask(params, frozen_prefixes) -> object:
    """False for the leaves whose path starts with one of ``frozen_prefixes`` (tuples of names,
    e.g. ``("image_tower",)``), True elsewhere."""
    prefixes = [tuple(p) for p in frozen_prefixes]
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not any(tuple(_names(path))[:len(p)] == p for p in prefixes), params)


def vit_layer_id(path, depth: int) -> int:
    """A ViT parameter's layer: 0 for embeddings (patch, position, class token, ln_pre),
    ``i + 1`` for ``block_i``, ``depth + 1`` for what follows (final norm, pooling head, head)."""
    names = _names(path)
    for name in names:
        if name.startswith("block_") and name[6:].isdigit():
            return int(name[6:]) + 1
    if any(n in ("embedding", "posemb", "cls", "ln_pre") for n in names):
        return 0
    return depth + 1


def layerwise_lr_decay(decay: float, depth: int) -> optax.GradientTransformation:
    """Scales each ViT update by ``decay ** (depth + 1 - layer_id)`` (BEiT / big_vision style):
    the head keeps the full learning rate, lower layers get geometrically less. Put it after
    the optimiser in a chain (AdamW's weight decay is scaled with the learning rate too)."""
    def update(updates, state, params=None):
        del params
        return jax.tree_util.tree_map_with_path(
            lambda path, u: u * decay ** (depth + 1 - vit_layer_id(path, depth)), updates), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
