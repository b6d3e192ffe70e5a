"""The contrastive task (CLIP / SigLIP): state creation and the pure train step.

``train_step(state, batch, rng)`` runs on one device's slice of the global batch under the
``"data"`` axis (see ``parallel/drivers.py``); the loss sees the whole global batch through an
all-gather of the embeddings, and gradients are summed over devices, so every driver and
device count gives the numbers of one device on the full batch.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from multimodal_jax.data import vocab
from multimodal_jax.evaluation import contrastive_eval
from multimodal_jax.evaluation import explain
from multimodal_jax.evaluation import multilingual
from multimodal_jax.models import factory
from multimodal_jax.parallel import accumulate
from multimodal_jax.parallel import flops
from multimodal_jax.parallel.mesh import AXIS
from multimodal_jax.parallel.mesh import as_varying
from multimodal_jax.pretrained import init_from
from multimodal_jax.tasks import base
from multimodal_jax.tasks import contrastive_losses
from multimodal_jax.tasks import optim

LOSSES = ("softmax", "sigmoid")
INIT_TOWERS = ("image", "all")  # what config.init_from initialises


class TrainState(train_state.TrainState):
    """Step, params and optimiser state (``apply_fn`` and ``tx`` are static)."""


def build_model(config: ml_collections.ConfigDict, tokenizer):
    """The two-tower model of ``config.model`` with the tokenizer's vocabulary."""
    return factory.build_two_tower(config.model, config.loss, tokenizer.vocab_size,
                                   tokenizer.pad_id, tokenizer.eos_id)


LOCKED_IMAGE_PARAMS = (("image_tower",), ("img_proj",))  # LiT: what lock_image_tower freezes


def create_state(config: ml_collections.ConfigDict, model, rng, pretrained: bool = True) -> TrainState:
    """Initialises params (on the host's default device) and the optimiser. ``init_from``
    loads pretrained weights (unless ``pretrained=False``): the image tower alone, or with
    ``init_towers="all"`` the whole model (both towers, projections, temperature: a published
    CLIP to evaluate or fine-tune); ``lock_image_tower`` (LiT) then trains only the text side."""
    size = config.data.image_size
    images = jnp.zeros((1, size, size, 3), jnp.float32)
    tokens = jnp.zeros((1, config.tokenizer.max_len), jnp.int32)
    params = jax.jit(functools.partial(model.init, images=images, tokens=tokens))(rng)["params"]
    if pretrained and config.get("init_from"):
        params = _pretrained(params, config.init_from, config.get("init_towers", "image"))
    tx = optim.make_optimizer(config.optim, config.total_steps)
    if config.get("lock_image_tower", False):
        tx = optim.freeze(tx, optim.trainable_mask(params, LOCKED_IMAGE_PARAMS))
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _pretrained(fresh: dict, spec: str, towers: str) -> dict:
    """``fresh`` params with the image tower, or everything, from the weights ``spec`` names."""
    if towers == "all":
        return init_from.merge(fresh, init_from.load_two_tower(spec), keep_fresh=())
    return init_from.merge(fresh, init_from.load_image_tower(spec), keep_fresh=(),
                           at=("image_tower",))


def contrastive_loss(out: dict[str, Any], loss: str):
    """This device's share of the global-batch loss, and the logits of its rows."""
    if loss == "sigmoid":
        return contrastive_losses.sigmoid_contrastive_loss(out["image_embedding"], out["text_embedding"],
                                               out["logit_scale"], out["logit_bias"], AXIS)
    return contrastive_losses.softmax_contrastive_loss(out["image_embedding"], out["text_embedding"],
                                           out["logit_scale"], AXIS)


def loss_and_accuracy(out: dict[str, Any], loss: str, chunk_size: int = 0):
    """This device's share of the loss and its rows' in-batch accuracy. ``chunk_size > 0``
    (sigmoid only) uses the chunked loss, which never builds the ``[b, G]`` logits."""
    if chunk_size:
        share, best = contrastive_losses.chunked_sigmoid_contrastive_loss(
            out["image_embedding"], out["text_embedding"], out["logit_scale"], out["logit_bias"],
            AXIS, chunk_size)
        rows = jax.lax.axis_index(AXIS) * best.shape[0] + jnp.arange(best.shape[0])
        return share, jnp.mean(best == rows)
    share, logits = contrastive_loss(out, loss)
    return share, contrastive_losses.in_batch_accuracy(logits, AXIS)


def train_step(state: TrainState, batch: dict, rng, *, loss: str = "softmax", chunk_size: int = 0,
               accum_steps: int = 1):
    """One AdamW step on the global batch; returns ``(state, metrics)``, metrics replicated.
    With ``accum_steps > 1`` the gradient is the mean over micro-batches, each its own
    contrastive problem (its negatives: the micro-batch; see ``accumulate.py``)."""
    del rng  # the contrastive forward pass is deterministic (no dropout, no augmentation here)

    def loss_fn(params, batch):
        out = state.apply_fn({"params": params}, images=batch["image"], tokens=batch["tokens"])
        share, accuracy = loss_and_accuracy(out, loss, chunk_size)
        return share, (accuracy, out["logit_scale"])

    (share, (accuracy, scale)), grads = accumulate.value_and_grad(
        loss_fn, as_varying(state.params), batch, accum_steps)
    grads = jax.lax.psum(grads, AXIS)
    metrics = {
        "loss": jax.lax.psum(share, AXIS),
        "batch_accuracy": jax.lax.pmean(accuracy, AXIS),
        "logit_scale": jax.lax.pmean(scale, AXIS),
        "grad_norm": optax.tree.norm(grads),
    }
    return state.apply_gradients(grads=grads), metrics


def make_train_step(config: ml_collections.ConfigDict):
    """``train_step`` with the config's static choices bound (``loss_chunk_size`` and
    ``accum_steps`` are optional fields, default off)."""
    return functools.partial(train_step, loss=config.loss,
                             chunk_size=config.get("loss_chunk_size", 0),
                             accum_steps=config.get("accum_steps", 1))


def train_flops_per_example(config: ml_collections.ConfigDict, model) -> float:
    """Analytic training FLOPs of one example: both towers, and its row of similarities over
    the global batch."""
    return flops.contrastive_train(model, config.data.image_size, config.tokenizer.max_len,
                                   config.batch_size, config.loss)


class ContrastiveTask(base.Task):
    """CLIP / SigLIP training of the two towers, evaluated by zero-shot and retrieval."""

    name = "contrastive"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
        super().__init__(config, workdir, shapes_only)
        self.tokenizer = vocab.ensure_tokenizer(config, workdir, shapes_only)
        self.model = build_model(config, self.tokenizer)
        self.evaluator = contrastive_eval.Evaluator(self.model, config, self.tokenizer)

    @classmethod
    def check_config(cls, config: ml_collections.ConfigDict) -> None:
        if config.get("loss") not in LOSSES:
            raise ValueError(f"config.loss={config.get('loss')!r} is unknown for the contrastive "
                             f"task; choose one of {LOSSES}.")
        towers = config.get("init_towers", "image")
        if towers not in INIT_TOWERS:
            raise ValueError(f"config.init_towers={towers!r}; choose one of {INIT_TOWERS}: "
                             "'image' starts the image tower from config.init_from, 'all' the "
                             "whole model.")
        if "model" in config:
            factory.check_two_tower_block(config.model)
        if "evaluation" in config:
            multilingual.check_config(config)
            explain.check_config(config)
        chunk_size = config.get("loss_chunk_size", 0)
        if chunk_size and config.loss != "sigmoid":
            raise ValueError(f"config.loss_chunk_size={chunk_size} needs config.loss='sigmoid' "
                             "(the chunked loss is SigLIP's); set it to 0 for the softmax loss.")
        contrastive_eval.check_config(config)

    def create_state(self, rng) -> TrainState:
        return create_state(self.config, self.model, rng, self.pretrained)

    def train_step(self):
        return make_train_step(self.config)

    def eval_functions(self):
        encoders = self.evaluator.encoders
        return {"image_encoder": (encoders.image, ("image",)),
                "text_encoder": (encoders.text, ("tokens",))}

    def flops_per_example(self) -> float:
        return train_flops_per_example(self.config, self.model)
