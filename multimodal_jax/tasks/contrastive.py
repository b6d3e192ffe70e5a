"""The contrastive task (CLIP / SigLIP): state creation and the pure train step.

``train_step(state, batch, rng)`` runs on one device's slice of the global batch under the
``"data"`` axis (see ``parallel.py``); the loss sees the whole global batch through an
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

from multimodal_jax import losses
from multimodal_jax import optim
from multimodal_jax.data import pipeline
from multimodal_jax.data import vocab
from multimodal_jax.evaluation import contrastive_eval
from multimodal_jax.models import factory
from multimodal_jax.parallel import AXIS, as_varying

LOSSES = ("softmax", "sigmoid")


class TrainState(train_state.TrainState):
    """Step, params and optimiser state (``apply_fn`` and ``tx`` are static)."""


def build_model(config: ml_collections.ConfigDict, tokenizer):
    """The two-tower model of ``config.model`` with the tokenizer's vocabulary."""
    if config.loss not in LOSSES:
        raise ValueError(f"Unknown contrastive loss {config.loss!r}; choose one of {LOSSES}.")
    return factory.build_two_tower(config.model, config.loss, tokenizer.vocab_size,
                                   tokenizer.pad_id, tokenizer.eos_id)


def create_state(config: ml_collections.ConfigDict, model, rng) -> TrainState:
    """Initialises params (on the host's default device) and the optimiser."""
    size = config.data.image_size
    images = jnp.zeros((1, size, size, 3), jnp.float32)
    tokens = jnp.zeros((1, config.tokenizer.max_len), jnp.int32)
    params = jax.jit(functools.partial(model.init, images=images, tokens=tokens))(rng)["params"]
    tx = optim.make_optimizer(config.optim, config.total_steps)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def contrastive_loss(out: dict[str, Any], loss: str):
    """This device's share of the global-batch loss, and the logits of its rows."""
    if loss == "sigmoid":
        return losses.sigmoid_contrastive_loss(out["image_embedding"], out["text_embedding"],
                                               out["logit_scale"], out["logit_bias"], AXIS)
    return losses.softmax_contrastive_loss(out["image_embedding"], out["text_embedding"],
                                           out["logit_scale"], AXIS)


def train_step(state: TrainState, batch: dict, rng, *, loss: str = "softmax"):
    """One AdamW step on the global batch; returns ``(state, metrics)``, metrics replicated."""
    del rng  # the contrastive forward pass is deterministic (no dropout, no augmentation here)

    def loss_fn(params):
        out = state.apply_fn({"params": params}, images=batch["image"], tokens=batch["tokens"])
        share, logits = contrastive_loss(out, loss)
        return share, (logits, out["logit_scale"])

    (share, (logits, scale)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        as_varying(state.params))
    grads = jax.lax.psum(grads, AXIS)
    metrics = {
        "loss": jax.lax.psum(share, AXIS),
        "batch_accuracy": jax.lax.pmean(losses.in_batch_accuracy(logits, AXIS), AXIS),
        "logit_scale": jax.lax.pmean(scale, AXIS),
        "grad_norm": optax.tree.norm(grads),
    }
    return state.apply_gradients(grads=grads), metrics


def make_train_step(config: ml_collections.ConfigDict):
    """``train_step`` with the config's static choices bound."""
    return functools.partial(train_step, loss=config.loss)


class ContrastiveTask:
    """What the training loop needs from the contrastive task, bound to one config."""

    name = "contrastive"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        self.config = config
        pipeline.ensure_prepared_once(config.data)
        self.tokenizer = vocab.ensure_tokenizer(config, workdir)
        self.model = build_model(config, self.tokenizer)
        self.encoders = contrastive_eval.Encoders(self.model)

    def create_state(self, rng) -> TrainState:
        return create_state(self.config, self.model, rng)

    def train_step(self):
        return make_train_step(self.config)

    def train_batches(self, start_step: int):
        """This process's endless batches from ``start_step`` on."""
        return pipeline.make_train_iterator(self.config.data, self.tokenizer,
                                            self.config.batch_size, self.config.seed, start_step)

    def evaluate(self, params, mesh, picture_path=None) -> dict[str, float]:
        return contrastive_eval.evaluate(self.encoders, params, self.config, self.tokenizer, mesh,
                                         picture_path)
