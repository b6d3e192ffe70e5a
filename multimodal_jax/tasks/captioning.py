"""Image captioning (CoCa's captioner, CapPa): state creation, the pure train and eval steps.

A ViT image tower (optionally from a contrastive run, ``config.init_from``, and locked with
``config.lock_image_tower``) and a Transformer decoder that cross-attends to its tokens
(``models/captioner.py``), trained with teacher-forced cross-entropy over the caption tokens,
padding masked. ``config.parallel_prediction = f`` trains a share ``f`` of the examples with
CapPa's parallel prediction instead: all decoder inputs are the mask token, attention is not
causal, so every token is predicted from the image alone. (Padding is masked out of the loss
for both objectives; in parallel-prediction rows the pad positions are still mask tokens that
the others attend to, so there the loss depends on ``tokenizer.max_len``, as in CapPa.)

``train_step(state, batch, rng)`` runs on one device's slice of the global batch under the
``"data"`` axis (``parallel/drivers.py``): the loss is the mean over the *global* batch's target
tokens (the token count is summed over devices), gradients are summed over devices, and the
parallel-prediction rows are drawn from each example's global index, so pmap, the mesh driver
and one device on the whole batch give the same numbers.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from multimodal_jax.data import vocab
from multimodal_jax.evaluation import captioning_eval
from multimodal_jax.models import captioner
from multimodal_jax.models import decoder as decoder_lib
from multimodal_jax.models import decoding
from multimodal_jax.models import factory
from multimodal_jax.parallel.mesh import AXIS
from multimodal_jax.parallel.mesh import as_varying
from multimodal_jax.pretrained import init_from
from multimodal_jax.tasks import base
from multimodal_jax.tasks import optim

LOCKED_IMAGE_PARAMS = (("image_tower",),)  # what lock_image_tower freezes


class TrainState(train_state.TrainState):
    """Step, params and optimiser state (``apply_fn`` and ``tx`` are static)."""


def build_model(config: ml_collections.ConfigDict, tokenizer) -> captioner.Captioner:
    """The ViT of ``config.model.image`` and the decoder of ``config.model.decoder`` with the
    tokenizer's vocabulary."""
    dtype = factory.compute_dtype(config.model.dtype)
    text = decoder_lib.TextDecoder(vocab_size=tokenizer.vocab_size,
                                   **config.model.decoder.to_dict(), dtype=dtype)
    image = factory.build_vit(config.model.image, config.model.dtype)
    return captioner.Captioner(image_tower=image, decoder=text,
                               pooled_token=config.model.get("pooled_token", True))


def create_state(config: ml_collections.ConfigDict, model, rng,
                 pretrained: bool = True) -> TrainState:
    """Fresh params with, unless ``pretrained=False``, the image tower of ``config.init_from``;
    the optimiser (the tower frozen with ``lock_image_tower``)."""
    size = config.data.image_size
    images = jnp.zeros((1, size, size, 3), jnp.float32)
    tokens = jnp.zeros((1, config.tokenizer.max_len), jnp.int32)
    params = jax.jit(lambda key: model.init(key, images, tokens))(rng)["params"]
    if pretrained and config.get("init_from"):
        params = init_from.load_into(params, config.init_from, keep_fresh=(), at=("image_tower",))
    tx = optim.make_optimizer(config.optim, config.total_steps)
    if config.get("lock_image_tower", False):
        tx = optim.freeze(tx, optim.trainable_mask(params, LOCKED_IMAGE_PARAMS))
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def parallel_rows(rng, step, local: int, fraction: float):
    """Bool ``[local]``: this device's examples trained by parallel prediction, each drawn from
    ``fold_in(fold_in(rng, step), global example index)`` (independent of the device count)."""
    key = jax.random.fold_in(rng, step)
    first = jax.lax.axis_index(AXIS) * local
    draw = lambda i: jax.random.uniform(jax.random.fold_in(key, i))  # noqa: E731
    return jax.vmap(draw)(first + jnp.arange(local)) < fraction


@dataclasses.dataclass(frozen=True)
class Tokens:
    """The token ids a step needs (static)."""

    bos_id: int | None
    pad_id: int
    mask_id: int


def train_step(state: TrainState, batch: dict, rng, *, ids: Tokens,
               parallel_prediction: float = 0.0, lock_image_tower: bool = False):
    """One optimiser step on the global batch; returns ``(state, metrics)``, metrics replicated."""
    inputs, targets = captioner.inputs_and_targets(batch["tokens"], ids.bos_id, ids.pad_id)
    bidirectional = None
    if parallel_prediction > 0:
        bidirectional = parallel_rows(rng, state.step, inputs.shape[0], parallel_prediction)
        inputs = jnp.where(bidirectional[:, None], ids.mask_id, inputs)
    total = jnp.maximum(jax.lax.psum(jnp.sum(targets != ids.pad_id), AXIS), 1).astype(jnp.float32)

    def loss_fn(params):
        memory = state.apply_fn({"params": params}, batch["image"], method="encode_image")
        if lock_image_tower:  # no backward pass through a frozen tower
            memory = jax.lax.stop_gradient(memory)
        logits = state.apply_fn({"params": params}, inputs, memory, bidirectional=bidirectional,
                                method="decode")
        nll, _, right = decoding.token_losses(logits, targets, ids.pad_id)
        return jnp.sum(nll) / total, jnp.sum(right)

    (share, right), grads = jax.value_and_grad(loss_fn, has_aux=True)(as_varying(state.params))
    grads = jax.lax.psum(grads, AXIS)
    metrics = {"loss": jax.lax.psum(share, AXIS),
               "token_accuracy": jax.lax.psum(right, AXIS) / total,
               "grad_norm": optax.tree.norm(grads)}
    return state.apply_gradients(grads=grads), metrics


@functools.partial(jax.jit, static_argnames=("apply_fn", "ids"))
def eval_step(params, images, tokens, *, apply_fn, ids: Tokens):
    """Per-example ``[B, 3]`` columns: summed target NLL, target count, targets right. Jitted,
    no collectives: it runs over globally sharded arrays (``encode.map_dataset``)."""
    inputs, targets = captioner.inputs_and_targets(tokens, ids.bos_id, ids.pad_id)
    logits = apply_fn({"params": params}, images, inputs)
    return jnp.stack(decoding.token_losses(logits, targets, ids.pad_id), axis=1)


def token_ids(tokenizer, model: captioner.Captioner) -> Tokens:
    return Tokens(tokenizer.bos_id, tokenizer.pad_id, model.decoder.mask_id)


def make_train_step(config: ml_collections.ConfigDict, ids: Tokens):
    """``train_step`` with the config's static choices bound."""
    return functools.partial(train_step, ids=ids,
                             parallel_prediction=float(config.get("parallel_prediction", 0.0)),
                             lock_image_tower=bool(config.get("lock_image_tower", False)))


class CaptioningTask(base.Task):
    """A ViT and a cross-attending decoder trained to write the captions."""

    name = "captioning"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
        super().__init__(config, workdir, shapes_only)
        self.tokenizer = vocab.ensure_tokenizer(config, workdir, shapes_only)
        self.model = build_model(config, self.tokenizer)
        self.ids = token_ids(self.tokenizer, self.model)
        losses = functools.partial(eval_step, apply_fn=self.model.apply, ids=self.ids)
        self.evaluator = captioning_eval.Evaluator(self.model, config, self.tokenizer, losses)

    @classmethod
    def check_config(cls, config: ml_collections.ConfigDict) -> None:
        block = config.model.get("decoder")
        if block is None:
            raise ValueError("config.model.decoder is missing: the captioning task needs a decoder "
                             f"block with fields among {factory.config_fields(decoder_lib.TextDecoder)}.")
        factory.check_decoder_block(block, config.tokenizer.max_len)
        fraction = config.get("parallel_prediction", 0.0)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"config.parallel_prediction={fraction} must be in [0, 1): the share of "
                             "examples trained by CapPa's parallel prediction (0 = none, CapPa: 0.75).")
        captioning_eval.check_config(config)

    def create_state(self, rng) -> TrainState:
        return create_state(self.config, self.model, rng, self.pretrained)

    def train_step(self):
        return make_train_step(self.config, self.ids)

    def eval_functions(self):
        return {"eval_step": (self.evaluator.losses, ("image", "tokens")),
                "decode": (self.evaluator.generate, ("image",))}

