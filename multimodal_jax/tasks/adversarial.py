"""The adversarial task: a conditional GAN, text-to-image (captions embedded by a frozen
contrastive text tower) or class-conditional; state creation and the pure train step.

State: ``params = {"g", "d", "g_ema"}`` (the EMA generator sits in ``params`` because the
loop evaluates ``state.params``), D's spectral-norm vectors in ``batch_stats``, one optax
state per network (``opt_g``, ``opt_d``) and, for text conditioning, the frozen contrastive
model in ``frozen``.

``train_step(state, batch, rng)`` runs on one device's slice of the global batch under the
``"data"`` axis (``parallel/drivers.py``):

1. keys ``fold_in(fold_in(rng, step), axis_index)``: noise and augmentation differ per device;
2. one power iteration of spectral norm on the replicated D params: the same statistics on
   every device by construction (no data enters them);
3. D step: hinge or non-saturating loss on real images (real), generated ones (fake) and real
   ones with another example's condition (fake, ``matching_weight``; only where that condition
   really differs, ``truly_mismatched``), all through DiffAugment; R1 on ``1 / r1_interval``
   of the real images at every step (lazy R1's cost and expected strength: see
   ``discriminator_loss``); gradients averaged over devices;
4. G step against the updated D on the same generated images (one G forward per step, its
   pullback kept from step 3), plus ``alignment_weight`` (``align_weight``, and
   ``align_weight_late`` over the run's last ``align_late_steps``) x the alignment of the frozen
   contrastive model's embeddings of its image and of its caption: their cosine distance
   (``"cosine_to_real"``: capped at the batch's real image of that caption), or
   (``align_loss="contrastive"``) CLIP's cross-entropy over this device's captions;
5. EMA of G with ramp-up, from the averaged (identical) params: identical on every device.
"""

import dataclasses
import functools
from typing import Any
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from multimodal_jax.data import datasets
from multimodal_jax.data import diffaugment
from multimodal_jax.models import factory
from multimodal_jax.models import gan
from multimodal_jax.models import projected_discriminator
from multimodal_jax.parallel.mesh import AXIS
from multimodal_jax.parallel.mesh import as_varying
from multimodal_jax.pretrained import frozen_clip
from multimodal_jax.tasks import adversarial_losses
from multimodal_jax.tasks import base
from multimodal_jax.tasks import truncation

CONDITIONS = ("text", "class")
DISCRIMINATORS = ("pixel", "projected")  # config.gan.discriminator


class GanState(struct.PyTreeNode):
    """Step, the three generators' / discriminator's params, SN statistics, two optimiser
    states and the frozen conditioning model (``tx_g`` / ``tx_d`` are static)."""

    step: jax.Array
    params: dict
    batch_stats: dict
    opt_g: Any
    opt_d: Any
    frozen: dict
    tx_g: optax.GradientTransformation = struct.field(pytree_node=False)
    tx_d: optax.GradientTransformation = struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything static a step needs: the modules and the loss settings."""

    generator: gan.Generator
    discriminator: gan.Discriminator | projected_discriminator.ProjectedDiscriminator
    clip: Optional[frozen_clip.FrozenClip] = None  # text conditioning / alignment
    loss: str = "hinge"
    z_dim: int = 64
    matching_weight: float = 1.0
    align_weight: float = 0.0
    align_loss: str = "cosine"  # or "contrastive" (adversarial_losses.ALIGNMENTS)
    align_weight_late: float = 0.0  # the weight over the run's last align_late_steps steps
    align_late_steps: int = 0  # 0: align_weight throughout
    total_steps: int = 0
    r1_gamma: float = 0.0
    r1_interval: int = 16
    augment: tuple = diffaugment.POLICIES
    ema_half_life_images: float = 10_000.0
    ema_rampup: float = 0.05  # 0: no ramp-up
    feature_blocks: tuple = ()  # projected D: the frozen image tower's blocks it reads

    @property
    def data_norm(self):
        return self.generator.mean, self.generator.std

    @property
    def aligns(self) -> bool:
        """Whether G's loss has the alignment term at any step."""
        return aligns_at_any_step(self.align_weight, self.align_weight_late, self.align_late_steps)

    @property
    def projected(self) -> bool:
        """Whether D judges the frozen image tower's features instead of the pixels."""
        return bool(self.feature_blocks)

    def init_condition(self):
        """A one-example condition of the right kind, for initialisation."""
        if self.clip is None:
            return jnp.zeros((1,), jnp.int32)
        return jnp.zeros((1, self.clip.embed_dim), jnp.float32)


def aligns_at_any_step(weight: float, late_weight: float, late_steps: int) -> bool:
    """Whether an alignment of ``weight``, ``late_weight`` over the last ``late_steps`` steps,
    is ever on (the step computes the term, and the config check needs text conditioning)."""
    return bool(weight or (late_steps and late_weight))


# ----------------------------------------------------------------------------- building


def build_modules(config: ml_collections.ConfigDict, feature_blocks: tuple = ()):
    """G and D of ``config.model`` at ``config.data.image_size`` in the data normalisation; with
    ``feature_blocks``, D is ``config.model.projected``'s heads, one per block."""
    dtype = factory.compute_dtype(config.model.dtype)
    classes = config.condition.num_classes if config.condition.kind == "class" else 0
    data = config.data
    mean, std = datasets.normalisation(data)
    generator = gan.Generator(
        resolution=data.image_size, num_classes=classes, dtype=dtype, mean=mean, std=std,
        **{k: tuple(v) if isinstance(v, (list, tuple)) else v
           for k, v in config.model.generator.to_dict().items()})
    if feature_blocks:
        heads = config.model.projected
        return generator, projected_discriminator.ProjectedDiscriminator(
            len(feature_blocks), heads.width, classes, heads.spectral_norm, dtype)
    disc = config.model.discriminator.to_dict()
    discriminator = gan.Discriminator(resolution=data.image_size, num_classes=classes, dtype=dtype,
                                      widths=tuple(disc.pop("widths")), **disc)
    return generator, discriminator


def make_setup(config: ml_collections.ConfigDict, clip: Optional[frozen_clip.FrozenClip]) -> Setup:
    """The static step settings of ``config`` (``clip``: the conditioning model, or None)."""
    blocks = feature_blocks(config, clip)
    generator, discriminator = build_modules(config, blocks)
    g = config.gan
    return Setup(generator, discriminator, clip, g.loss, g.z_dim, g.matching_weight,
                  g.align_weight, g.get("align_loss", "cosine"), g.get("align_weight_late", 0.0),
                  g.get("align_late_steps", 0), config.total_steps, g.r1_gamma, g.r1_interval,
                  tuple(g.augment), g.ema_half_life_images, g.ema_rampup, blocks)


def feature_blocks(config: ml_collections.ConfigDict, clip: Optional[frozen_clip.FrozenClip]) -> tuple:
    """The image tower's blocks a projected D reads (``config.model.projected.blocks``, () = all
    of them), or () for the pixel D; a clear error for a block the tower does not have."""
    if config.gan.get("discriminator", "pixel") != "projected":
        return ()
    depth = clip.image_depth
    blocks = tuple(config.model.projected.blocks) or tuple(range(depth))
    if any(not 0 <= b < depth for b in blocks) or len(set(blocks)) != len(blocks):
        raise ValueError(f"config.model.projected.blocks={blocks}: the conditioning model's image "
                         f"tower has blocks 0 to {depth - 1}; name each at most once (() = all).")
    return blocks


def learning_rate(config: ml_collections.ConfigDict, total_steps: int):
    """``config.lr``, constant (GAN practice) or, with ``decay_from`` < 1, constant for that
    fraction of the run and then linear to ``lr * end_lr_ratio`` at ``total_steps`` (the
    pix2pix / CycleGAN tail). A plain float when constant, so Adam's state has no count."""
    start = config.get("decay_from", 1.0)
    if start >= 1.0:
        return config.lr
    begin = int(round(start * total_steps))
    tail = optax.linear_schedule(config.lr, config.lr * config.get("end_lr_ratio", 0.0),
                                 max(total_steps - begin, 1))
    return optax.join_schedules([optax.constant_schedule(config.lr), tail], [begin])


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """Adam (GAN practice: b1 = 0, b2 = 0.99) at ``learning_rate``, optional clipping."""
    adam = optax.adam(learning_rate(config, total_steps), b1=config.b1, b2=config.b2, eps=config.eps)
    if config.get("grad_clip_norm"):
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
    return adam


def create_state(setup: Setup, rng, tx_g, tx_d, frozen: Optional[dict] = None) -> GanState:
    """Fresh G and D (EMA = a copy of G), SN vectors, optimiser states; ``frozen`` holds the
    conditioning model's params (``{"clip": ...}``) for text conditioning."""
    cond = setup.init_condition()
    kg, kd = jax.random.split(rng)
    g_params = jax.jit(setup.generator.init)(kg, jnp.zeros((1, setup.z_dim)), cond)["params"]
    d_vars = jax.jit(functools.partial(setup.discriminator.init, update_stats=False))(
        kd, example_d_input(setup, frozen), cond)
    params = {"g": g_params, "d": d_vars["params"], "g_ema": jax.tree.map(jnp.copy, g_params)}
    return GanState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats={"d": dict(d_vars.get("batch_stats", {}))},
                    opt_g=tx_g.init(g_params), opt_d=tx_d.init(d_vars["params"]),
                    frozen=jax.tree.map(jnp.copy, dict(frozen or {})),  # the state is donated
                    tx_g=tx_g, tx_d=tx_d)


# ----------------------------------------------------------------------------- pieces


def device_keys(rng, step, index) -> dict:
    """The keys of device ``index`` at ``step``: ``fold_in(fold_in(rng, step), index)``."""
    rng = jax.random.fold_in(jax.random.fold_in(rng, step), index)
    return dict(zip(("z", "aug_d", "aug_g"), jax.random.split(rng, 3)))


def encode_condition(setup: Setup, frozen: dict, raw):
    """What G and D are conditioned on: the frozen model's embeddings of the caption tokens
    ``raw``, or (class conditioning) the class ids ``raw`` themselves."""
    if setup.clip is None:
        return raw
    return jax.lax.stop_gradient(setup.clip.encode_text(frozen["clip"], raw))


def condition(setup: Setup, frozen: dict, batch: dict):
    """The condition of every example of ``batch``: its caption's, or its class's."""
    return encode_condition(setup, frozen, batch["label"] if setup.clip is None else batch["tokens"])


def generate(setup: Setup, g_params, frozen: dict, z, raw, psi: float = 1.0):
    """Images G draws from noise ``z`` ``[B, z_dim]`` for raw conditions ``raw`` (caption
    tokens, or class ids), in the data normalisation (``setup.data_norm``); with ``psi < 1``
    their style vectors are truncated toward each condition's mean (``truncation.py``).
    The one sampler: evaluation, sample grids and ``train.predict generate`` all call it."""
    cond = encode_condition(setup, frozen, raw)
    if psi == 1.0:  # a static float: psi = 1 is exactly G(z, c), not a lerp that rounds
        return setup.generator.apply({"params": g_params}, z, cond)
    variables = {"params": g_params}
    w = setup.generator.apply(variables, z, cond, method="style")
    w_mean = truncation.conditional_mean_style(setup.generator, variables, cond, setup.z_dim)
    return setup.generator.apply(variables, truncation.truncate(w, w_mean, psi), method="synthesis")


def d_input(setup: Setup, frozen: dict, images):
    """What D reads of ``images``: the pixels, or (projected D) the frozen image tower's token
    maps after ``setup.feature_blocks``, through which gradients reach the images."""
    if not setup.projected:
        return images
    return setup.clip.image_features(frozen["clip"], images, *setup.data_norm, setup.feature_blocks)


def example_d_input(setup: Setup, frozen: Optional[dict]):
    """Zeros shaped like one example's D input, for initialisation and power iterations (no
    tower is run: the shapes come from ``jax.eval_shape``)."""
    size = setup.generator.resolution
    images = jnp.zeros((1, size, size, 3))
    if not setup.projected:
        return images
    shapes = jax.eval_shape(functools.partial(d_input, setup), frozen, images)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def discriminate(setup: Setup, d_params, stats, frozen, images, cond, mismatched=None):
    """D's scores of ``images`` (and scores against ``mismatched`` conditions) without updating
    SN stats; ``frozen``: the frozen models' params (the projected D's tower)."""
    return setup.discriminator.apply({"params": d_params, "batch_stats": stats["d"]},
                                     d_input(setup, frozen, images), cond, mismatched,
                                     update_stats=False)


def power_iteration(setup: Setup, d_params, stats, frozen: Optional[dict] = None) -> dict:
    """One spectral-norm power iteration per D layer; it reads only the params and vectors,
    so replicated inputs give the same statistics on every device. (``frozen``: the shapes of
    a projected D's features.)"""
    if not setup.discriminator.spectral_norm:
        return stats
    _, new = setup.discriminator.apply(
        {"params": d_params, "batch_stats": stats["d"]}, example_d_input(setup, frozen),
        setup.init_condition(), update_stats=True, mutable=["batch_stats"])
    return {"d": new["batch_stats"]}


def _augment(setup: Setup, images, rng):
    return diffaugment.diff_augment(images, rng, setup.augment) if setup.augment else images


def _noise(setup: Setup, rng, batch: dict):
    return jax.random.normal(rng, (batch["image"].shape[0], setup.z_dim))


def same_condition(batch: dict):
    """``[B, B]`` bool: whether examples i and j ask for the same image. Compared by label where
    the batch has one (the built-in dataset's (shape, colour) of object 1, which paraphrased
    captions share), else by the caption's tokens."""
    own = batch["label"] if "label" in batch else batch["tokens"]
    equal = own[:, None] == own[None, :]
    return equal if own.ndim == 1 else jnp.all(equal, axis=-1)


def truly_mismatched(batch: dict):
    """1.0 for the examples whose borrowed condition (the previous example's, ``roll`` by 1)
    really differs from their own (``same_condition``), else 0.0: a neighbour with the same
    class, or the same caption, would teach D to reject a correct pair."""
    same = same_condition(batch)
    previous = jnp.roll(jnp.arange(same.shape[0]), 1)
    return 1.0 - same[jnp.arange(same.shape[0]), previous].astype(jnp.float32)


def generate_for_step(setup: Setup, g_params, frozen, batch, keys):
    """This step's condition, G's images of it (noise ``keys["z"]``) and the pullback that
    turns a gradient on those images into G's gradient: D's and G's phases share one G
    forward pass, as in the DCGAN reference loop (G's params do not change in between)."""
    cond = condition(setup, frozen, batch)
    z = _noise(setup, keys["z"], batch)
    fake, pullback = jax.vjp(lambda g: setup.generator.apply({"params": g}, z, cond), g_params)
    return cond, fake, pullback


def r1_slice(n: int, interval: int) -> int:
    """How many of a device's ``n`` real images R1 reads at each step: ``n // interval``, at
    least one."""
    return max(1, n // interval)


def r1_at(setup: Setup, d_params, stats, frozen, real, cond, rng):
    """The R1 penalty of D at the real images ``real`` (with their conditions ``cond``), seen
    through DiffAugment drawn from ``rng``; unscaled."""
    score = lambda x: jnp.sum(discriminate(setup, d_params, stats, frozen,  # noqa: E731
                                           _augment(setup, x, rng), cond))
    return adversarial_losses.r1_penalty(jax.grad(score)(real))


def discriminator_loss(d_params, setup: Setup, stats, frozen, batch, cond, fake, keys):
    """This device's D loss and its parts (no collectives: the step averages). Real and
    generated images go through DiffAugment and D together, in one pass.

    R1 is taken at every step on the first ``r1_slice`` real images, unscaled: the same FLOPs
    and expected gradient as lazy R1 (the whole batch every ``r1_interval`` steps, scaled by the
    interval), without a ``lax.cond``, in which XLA:CPU ran the double backward 33x slower
    (2.0 s against 61 ms at batch 64: ``python -m benchmarks.gan_r1``)."""
    fake = jax.lax.stop_gradient(fake)
    k_aug, k_r1 = jax.random.split(keys["aug_d"])
    real, n = batch["image"], batch["image"].shape[0]
    images = _augment(setup, jnp.concatenate([real, fake.astype(real.dtype)]), k_aug)
    conds = jnp.concatenate([cond, cond])
    mismatched = jnp.concatenate([jnp.roll(cond, 1, axis=0), cond])  # real + another's caption
    scores, other_scores = discriminate(setup, d_params, stats, frozen, images, conds, mismatched)
    real_scores, fake_scores, mismatch_scores = scores[:n], scores[n:], other_scores[:n]
    loss = adversarial_losses.d_real(real_scores, setup.loss) + adversarial_losses.d_fake(fake_scores, setup.loss)
    if setup.matching_weight:
        loss += setup.matching_weight * adversarial_losses.d_fake(mismatch_scores, setup.loss,
                                                          truly_mismatched(batch))
    penalty = jnp.zeros((), jnp.float32) + 0.0 * real_scores[0]  # varies by device, as the others
    if setup.r1_gamma:
        k = r1_slice(n, setup.r1_interval)
        penalty = r1_at(setup, d_params, stats, frozen, real[:k], cond[:k], k_r1)
        loss += setup.r1_gamma / 2 * penalty
    return loss, {"d_loss": loss, "real_score": jnp.mean(real_scores),
                  "fake_score": jnp.mean(fake_scores),
                  "mismatch_score": jnp.mean(mismatch_scores), "r1": penalty}


def alignment_weight(setup: Setup, step):
    """The alignment term's weight for the update after ``step`` updates: ``align_weight_late``
    over the run's last ``align_late_steps`` updates, ``align_weight`` before. A strong pull
    from the start draws blobs, and a ramp toward it did not help; a strong pull over the last
    steps draws shapes the judge reads better (README, GAN section)."""
    if not setup.align_late_steps:
        return setup.align_weight  # a Python float: the step before the late phase existed
    late = step >= setup.total_steps - setup.align_late_steps
    return jnp.where(late, setup.align_weight_late, setup.align_weight).astype(jnp.float32)


def generator_loss(fake, setup: Setup, d_params, stats, frozen, batch, cond, keys, weight):
    """This device's G loss (adversarial + ``weight`` x alignment) and its parts, as a function
    of G's images ``fake`` (``generator_grads`` carries its gradient back to G's params)."""
    scores = discriminate(setup, d_params, stats, frozen, _augment(setup, fake, keys["aug_g"]), cond)
    loss = adversarial_losses.g_adversarial(scores, setup.loss)
    parts = {"g_adv": loss}
    if setup.aligns:
        parts["align"] = align(setup, frozen, fake, cond, batch)
        loss += weight * parts["align"]
    return loss, {"g_loss": loss, **parts}


def generator_grads(fake, pullback, setup: Setup, d_params, stats, frozen, batch, cond, keys,
                    weight):
    """G's gradient of ``generator_loss`` (through ``pullback`` of ``generate_for_step``) and
    the loss's parts; ``weight``: the alignment's (``alignment_weight``)."""
    fake_grad, parts = jax.grad(generator_loss, has_aux=True)(fake, setup, d_params, stats,
                                                              frozen, batch, cond, keys, weight)
    (g_grads,) = pullback(fake_grad)
    return g_grads, parts


def align(setup: Setup, frozen: dict, fake, cond, batch: dict):
    """The alignment term of G's images with their captions (embedded ``cond``) under the
    frozen model. ``cosine_to_real`` caps each pull at the batch's real image of the same
    caption. The contrastive form compares each image with this device's captions only (no
    collective, so every driver computes the same), sharing the probability of those that
    ask for the same image (``same_condition``)."""
    encode = lambda images: setup.clip.encode_image(frozen["clip"], images, *setup.data_norm)  # noqa: E731
    image_emb = encode(fake)
    if setup.align_loss == "cosine":
        return adversarial_losses.alignment(image_emb, cond)
    if setup.align_loss == "cosine_to_real":
        return adversarial_losses.alignment_to_real(image_emb, encode(batch["image"]), cond)
    return adversarial_losses.contrastive_alignment(
        image_emb, cond, setup.clip.logit_scale(frozen["clip"]), same_condition(batch))


def ema_decay(setup: Setup, step, global_batch: int):
    """EMA decay after ``step`` updates: half-life ``ema_half_life_images`` images, ramped up
    (half-life at most ``ema_rampup`` x the images seen so far), as in StyleGAN2-ADA."""
    half_life = jnp.asarray(setup.ema_half_life_images, jnp.float32)
    if setup.ema_rampup:
        half_life = jnp.minimum(half_life, step.astype(jnp.float32) * global_batch * setup.ema_rampup)
    return 0.5 ** (global_batch / jnp.maximum(half_life, 1e-8))


def _apply(tx, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


# ----------------------------------------------------------------------------- the step


def train_step(state: GanState, batch: dict, rng, *, setup: Setup):
    """One D update then one G update (on the same G forward pass) and the EMA; returns
    ``(state, metrics)``, metrics averaged over devices."""
    keys = device_keys(rng, state.step, jax.lax.axis_index(AXIS))
    params = state.params
    stats = power_iteration(setup, params["d"], state.batch_stats, state.frozen)
    cond, fake, pullback = generate_for_step(setup, as_varying(params["g"]), state.frozen,
                                             batch, keys)
    d_grad_fn = jax.grad(discriminator_loss, has_aux=True)
    d_grads, d_parts = d_grad_fn(as_varying(params["d"]), setup, stats, state.frozen, batch,
                                 cond, fake, keys)
    d_grads = jax.lax.pmean(d_grads, AXIS)
    d_params, opt_d = _apply(state.tx_d, d_grads, state.opt_d, params["d"])

    weight = alignment_weight(setup, state.step)
    g_grads, g_parts = generator_grads(fake, pullback, setup, d_params, stats, state.frozen,
                                       batch, cond, keys, weight)
    g_grads = jax.lax.pmean(g_grads, AXIS)
    g_params, opt_g = _apply(state.tx_g, g_grads, state.opt_g, params["g"])

    step = state.step + 1
    beta = ema_decay(setup, step, batch["image"].shape[0] * jax.lax.psum(1, AXIS))
    g_ema = jax.tree.map(lambda e, p: beta * e + (1 - beta) * p, params["g_ema"], g_params)
    metrics = jax.lax.pmean({**d_parts, **g_parts}, AXIS)
    if setup.align_late_steps:
        metrics["align_weight"] = weight
    metrics.update(loss=metrics["d_loss"] + metrics["g_loss"], ema_decay=beta,
                   d_grad_norm=optax.tree.norm(d_grads), g_grad_norm=optax.tree.norm(g_grads))
    new_state = state.replace(step=step, params={"g": g_params, "d": d_params, "g_ema": g_ema},
                              batch_stats=stats, opt_g=opt_g, opt_d=opt_d)
    return new_state, metrics


def make_train_step(setup: Setup):
    """``train_step`` with the static setup bound."""
    return functools.partial(train_step, setup=setup)


# ----------------------------------------------------------------------------- the task


class AdversarialTask(base.Task):
    """A conditional GAN: G draws from a caption's (or a class's) condition, D judges both.
    The runs it reads (``config.prerequisites``) exist by now: the loop trains them first."""

    name = "adversarial"
    pictures_every_eval = True  # a sample grid at every evaluation

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
        from multimodal_jax.evaluation import gan_eval  # noqa: PLC0415 - heavy, evaluation only

        super().__init__(config, workdir, shapes_only)
        self.frozen = {}
        clip = None
        if config.condition.kind == "text":
            clip, clip_params, self.tokenizer = frozen_clip.load_named(
                config, config.condition.encoder, shapes_only)
            self.frozen = {"clip": clip_params}
        self.setup = make_setup(config, clip)
        if shapes_only:  # the judges are other runs' weights; the train step needs none of them
            return
        self.evaluator = gan_eval.Evaluator(
            config, functools.partial(generate, self.setup), self.setup.z_dim,
            self.setup.data_norm, self.frozen, self.tokenizer, self.initial_params)

    @classmethod
    def check_config(cls, config: ml_collections.ConfigDict) -> None:
        g = config.gan
        adversarial_losses.check_kind(g.loss, "config.gan.loss")
        if config.condition.kind not in CONDITIONS:
            raise ValueError(f"config.condition.kind={config.condition.kind!r}; choose one of {CONDITIONS}.")
        if config.condition.kind == "class" and not config.condition.get("num_classes"):
            raise ValueError("config.condition.kind='class' needs config.condition.num_classes.")
        late, late_steps = g.get("align_weight_late", 0.0), g.get("align_late_steps", 0)
        if config.condition.kind == "class" and aligns_at_any_step(g.align_weight, late, late_steps):
            raise ValueError("config.gan.align_weight > 0 needs text conditioning (a caption to align "
                             "with); set it (and align_late_steps) to 0 for "
                             "config.condition.kind='class'.")
        if g.align_weight < 0 or late < 0 or not 0 <= late_steps <= config.total_steps:
            raise ValueError(f"config.gan.align_weight={g.align_weight} and align_weight_late={late} "
                             f"must be >= 0, align_late_steps={late_steps} in [0, total_steps="
                             f"{config.total_steps}].")
        adversarial_losses.check_alignment(g.get("align_loss", "cosine"))
        judge = config.get("evaluation", {}).get("encoder")
        if judge and config.condition.kind == "text" and judge == config.condition.get("encoder"):
            raise ValueError(f"config.evaluation.encoder={judge!r} is also the GAN's conditioning "
                             "model (config.condition.encoder): metrics in the feature space that "
                             "trained the GAN flatter it. Name another contrastive model.")
        diffaugment.check_policy(g.augment)
        kind = g.get("discriminator", "pixel")
        if kind not in DISCRIMINATORS:
            raise ValueError(f"config.gan.discriminator={kind!r}; choose one of {DISCRIMINATORS}.")
        if kind == "projected" and config.condition.kind != "text":
            raise ValueError("config.gan.discriminator='projected' judges images through the "
                             "conditioning model's frozen image tower: it needs "
                             "config.condition.kind='text' (or use 'pixel').")
        truncation.check_psi(config.get("evaluation", {}).get("psi", 1.0), "config.evaluation.psi")
        if g.r1_gamma and g.r1_interval < 1:
            raise ValueError(f"config.gan.r1_interval must be >= 1, got {g.r1_interval}.")
        for side in ("generator", "discriminator"):
            block = config.model[side]
            widths = block.widths if side == "generator" else (0,) + tuple(block.widths)
            gan.num_blocks(config.data.image_size, widths, f"config.model.{side}")

    def create_state(self, rng) -> GanState:
        frozen = self.frozen
        if self.shapes_only:  # abstract params: zeros of their shapes (traced, never made)
            frozen = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), frozen)
        steps = self.config.total_steps
        return create_state(self.setup, rng, make_optimizer(self.config.optim.g, steps),
                            make_optimizer(self.config.optim.d, steps), frozen)

    def initial_params(self) -> dict:
        """The untrained params (from the config's seed), for the evaluation's baseline."""
        return self.create_state(jax.random.key(self.config.seed)).params

    def train_step(self):
        return make_train_step(self.setup)

