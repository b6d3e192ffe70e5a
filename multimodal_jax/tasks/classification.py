"""Supervised image classification with a ViT: state creation, the pure train and eval steps.

``train_step(state, batch, rng)`` runs on one device's slice of the global batch under the
``"data"`` axis (see ``parallel/drivers.py``): the loss is this device's share of the global-batch
mean and gradients are summed over devices, so pmap, the mesh driver and one device on the
whole batch give the same numbers. Mixup / CutMix pair example ``2k`` with ``2k + 1`` and draw
their mixing from the pair's *global* index, so they too are independent of the device count.

Labels are int ``[B]`` (one class; softmax cross-entropy with label smoothing) or int
``[B, K]`` class lists padded with -1 (multi-label; use ``loss="sigmoid"``).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from multimodal_jax import fields
from multimodal_jax.evaluation import classification_eval
from multimodal_jax.models import factory
from multimodal_jax.parallel import flops
from multimodal_jax.parallel.mesh import AXIS
from multimodal_jax.parallel.mesh import as_varying
from multimodal_jax.pretrained import init_from
from multimodal_jax.tasks import base
from multimodal_jax.tasks import optim

LOSSES = ("softmax", "sigmoid")
MIXES = ("none", "mixup", "cutmix", "both")


class TrainState(train_state.TrainState):
    """Step, params and optimiser state (``apply_fn`` and ``tx`` are static)."""


def build_model(config: ml_collections.ConfigDict):
    """The ViT of ``config.model.image`` with a ``config.num_classes``-way head."""
    return factory.build_vit(config.model.image, config.model.dtype, num_classes=config.num_classes)


def make_optimizer(config: ml_collections.ConfigDict, params) -> optax.GradientTransformation:
    """AdamW (``tasks/optim.py``), with layer-wise lr decay (``optim.layer_decay < 1``) and, with
    ``freeze_tower``, everything but the fresh ``head`` frozen."""
    tx = optim.make_optimizer(config.optim, config.total_steps)
    decay = config.optim.get("layer_decay", 1.0)
    if decay != 1.0:
        depth = init_from.vit_depth(params)
        tx = optax.chain(tx, optim.layerwise_lr_decay(decay, depth))
    if config.get("freeze_tower", False):
        tx = optim.freeze(tx, jax.tree_util.tree_map_with_path(
            lambda path, _: getattr(path[0], "key", None) == "head", params))
    return tx


def create_state(config: ml_collections.ConfigDict, model, rng, pretrained: bool = True) -> TrainState:
    """Fresh params, or a pretrained tower (``config.init_from``, unless ``pretrained=False``)
    with a fresh head; the optimiser."""
    size = config.data.image_size
    images = jnp.zeros((1, size, size, 3), jnp.float32)
    params = jax.jit(lambda key: model.init(key, images))(rng)["params"]
    if pretrained and config.get("init_from"):
        params = init_from.load_into(params, config.init_from, keep_fresh=("head",))
    return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config, params))


# ----------------------------------------------------------------------------- targets, metrics


def dense_targets(labels, num_classes: int):
    """Int ``[B]`` -> one-hot ``[B, C]``; int ``[B, K]`` (-1 = none) -> multi-hot ``[B, C]``."""
    if labels.ndim == 1:
        return jax.nn.one_hot(labels, num_classes)
    return jnp.minimum(jnp.sum(jax.nn.one_hot(labels, num_classes), axis=1), 1.0)


def smooth(targets, label_smoothing: float):
    """``(1 - s) * targets + s / C``."""
    return targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]


def per_example_loss(logits, targets, loss: str):
    """Softmax cross-entropy, or sigmoid cross-entropy summed over classes, per example."""
    logits = logits.astype(jnp.float32)
    if loss == "sigmoid":
        return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)
    return optax.softmax_cross_entropy(logits, targets)


def topk_correct(logits, targets, k: int):
    """1.0 where one of the ``k`` best-scoring classes is a true class (``targets > 0``)."""
    _, top = jax.lax.top_k(logits, min(k, logits.shape[-1]))
    return jnp.max(jnp.take_along_axis(targets, top, axis=-1) > 0, axis=-1).astype(jnp.float32)


# ----------------------------------------------------------------------------- mixup / cutmix


def _box_mask(rng, lam, height: int, width: int):
    """A CutMix box of area ``1 - lam`` at a uniform centre (clipped at the border): ``[H, W]``
    with 1 inside, and the area share actually inside."""
    cut_h, cut_w = height * jnp.sqrt(1 - lam), width * jnp.sqrt(1 - lam)
    cy, cx = jax.random.uniform(rng, (2,)) * jnp.array([height, width])
    ys, xs = jnp.arange(height)[:, None] + 0.5, jnp.arange(width)[None, :] + 0.5
    inside = ((jnp.abs(ys - cy) < cut_h / 2) & (jnp.abs(xs - cx) < cut_w / 2)).astype(jnp.float32)
    return inside, jnp.mean(inside)


def mix_pairs(images, targets, rng, kind: str, alpha: float):
    """Mixup / CutMix of example ``2k`` with ``2k + 1`` (both ways), ``lam ~ Beta(alpha, alpha)``
    per pair from ``fold_in(rng, global pair index)``; ``kind="both"``: a coin per pair."""
    local = images.shape[0]
    if local % 2:
        raise ValueError(f"Mixup/CutMix pair neighbouring examples: the per-device batch ({local}) "
                         "must be even; choose a batch_size that is an even multiple of the devices.")
    first = jax.lax.axis_index(AXIS) * local
    pair = (first + jnp.arange(local)) // 2
    partner = jnp.arange(local) ^ 1
    keys = jax.vmap(lambda p: jax.random.split(jax.random.fold_in(rng, p), 3))(pair)
    lam = jax.vmap(lambda k: jax.random.beta(k, alpha, alpha))(keys[:, 0])
    height, width = images.shape[1:3]
    box, area = jax.vmap(lambda k, pair_lam: _box_mask(k, pair_lam, height, width))(keys[:, 1], lam)
    use_cut = {"mixup": jnp.zeros(local, bool), "cutmix": jnp.ones(local, bool),
               "both": jax.vmap(lambda k: jax.random.bernoulli(k))(keys[:, 2])}[kind]
    own = jnp.where(use_cut, 1 - area, lam)  # share of each example's own target
    pixel_own = jnp.where(use_cut[:, None, None], 1 - box, lam[:, None, None])[..., None]
    mixed = pixel_own * images + (1 - pixel_own) * images[partner]
    return mixed.astype(images.dtype), own[:, None] * targets + (1 - own[:, None]) * targets[partner]


# ----------------------------------------------------------------------------- steps


def train_step(state: TrainState, batch: dict, rng, *, num_classes: int, loss: str = "softmax",
               label_smoothing: float = 0.0, mix: str = "none", mix_alpha: float = 0.2):
    """One optimiser step on the global batch; returns ``(state, metrics)``, metrics replicated."""
    rng = jax.random.fold_in(rng, state.step)  # same on every device: pairs are global
    clean = dense_targets(batch["label"], num_classes)
    images, targets = batch["image"], smooth(clean, label_smoothing)
    if mix != "none":
        images, targets = mix_pairs(images, targets, rng, mix, mix_alpha)
    global_batch = images.shape[0] * jax.lax.psum(1, AXIS)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, images)["logits"]
        return jnp.sum(per_example_loss(logits, targets, loss)) / global_batch, logits

    (share, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(as_varying(state.params))
    grads = jax.lax.psum(grads, AXIS)
    metrics = {
        "loss": jax.lax.psum(share, AXIS),
        "top1": jax.lax.pmean(jnp.mean(topk_correct(logits, clean, 1)), AXIS),
        "grad_norm": optax.tree.norm(grads),
    }
    return state.apply_gradients(grads=grads), metrics


def eval_step(params, images, labels, *, apply_fn, num_classes: int, loss: str = "softmax"):
    """Per-example ``[B, 4]`` columns: loss, top-1 and top-5 correct, predicted class. No
    collectives: jit it over globally sharded arrays (``evaluation/classification_eval.py``)."""
    logits = apply_fn({"params": params}, images)["logits"].astype(jnp.float32)
    targets = dense_targets(labels, num_classes)
    return jnp.stack([per_example_loss(logits, targets, loss), topk_correct(logits, targets, 1),
                      topk_correct(logits, targets, 5),
                      jnp.argmax(logits, axis=-1).astype(jnp.float32)], axis=1)


def make_train_step(config: ml_collections.ConfigDict):
    """``train_step`` with the config's static choices bound."""
    return functools.partial(train_step, num_classes=config.num_classes, loss=config.loss,
                             label_smoothing=config.label_smoothing, mix=config.mix.kind,
                             mix_alpha=config.mix.alpha)


class ClassificationTask(base.Task):
    """Supervised ViT classification (from scratch or a pretrained tower)."""

    name = "classification"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
        super().__init__(config, workdir, shapes_only)
        self.model = build_model(config)
        predict = jax.jit(functools.partial(eval_step, apply_fn=self.model.apply,
                                            num_classes=config.num_classes, loss=config.loss))
        features = jax.jit(lambda p, x: self.model.apply({"params": p}, x)["pooled"])
        self.evaluator = classification_eval.Evaluator(predict, features, config)

    @classmethod
    def check_config(cls, config: ml_collections.ConfigDict) -> None:
        if config.loss not in LOSSES:
            raise ValueError(f"Unknown classification loss {config.loss!r}; choose one of {LOSSES}.")
        if config.mix.kind not in MIXES:
            raise ValueError(f"Unknown config.mix.kind={config.mix.kind!r}; choose one of {MIXES}.")
        if not isinstance(config.num_classes, int) or config.num_classes < 2:
            raise ValueError(f"config.num_classes must be an integer >= 2, got {config.num_classes!r}.")
        fields.string_list(config.get("evaluation", {}).get("splits", ()), "config.evaluation.splits",
                           allow_empty=True)

    def create_state(self, rng) -> TrainState:
        return create_state(self.config, self.model, rng, self.pretrained)

    def train_step(self):
        return make_train_step(self.config)

    def eval_functions(self):
        return {"eval_step": (self.evaluator.predict, ("image", "label"))}

    def flops_per_example(self) -> float:
        return flops.classification_train(self.model, self.config.data.image_size)
