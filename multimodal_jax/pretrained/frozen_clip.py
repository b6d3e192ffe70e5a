"""Frozen contrastive models that other tasks read (a GAN's caption embeddings, its judge):
ours (a contrastive run's workdir and the config it was trained with) or a published CLIP
(``hf_clip:DIR``), each with its tokenizer and the image format it expects, so that images
in another normalisation or size can be fed to it."""

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from multimodal_jax.data import datasets
from multimodal_jax.data import tokenizers
from multimodal_jax.data import vocab
from multimodal_jax.models import factory
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.pretrained import hf_clip
from multimodal_jax.pretrained import init_from
from multimodal_jax.pretrained import weights_files

KINDS = ("workdir", "hf_clip")


def to_model_input(images, mean, std, model_mean, model_std, size: int):
    """NHWC images normalised with ``(mean, std)`` -> ``(model_mean, model_std)`` at ``size`` px
    (bilinear resize), for a frozen model trained on another input format."""
    if (tuple(mean), tuple(std)) != (tuple(model_mean), tuple(model_std)):
        pixels = images * jnp.asarray(std) + jnp.asarray(mean)
        images = (pixels - jnp.asarray(model_mean)) / jnp.asarray(model_std)
    if images.shape[1:3] != (size, size):
        images = jax.image.resize(images, images.shape[:1] + (size, size, images.shape[-1]),
                                  "bilinear")
    return images


@dataclasses.dataclass(frozen=True)
class FrozenClip:
    """A two-tower model and its image format; pure, jit-able encoders (params passed in)."""

    model: TwoTower
    image_size: int
    mean: tuple
    std: tuple

    def images_in(self, images, mean, std):
        """Images normalised with ``(mean, std)`` -> this model's normalisation and size."""
        return to_model_input(images, mean, std, self.mean, self.std, self.image_size)

    def encode_image(self, params, images, mean, std):
        """L2-normalised image embeddings of images in the ``(mean, std)`` normalisation."""
        return self.model.apply({"params": params}, self.images_in(images, mean, std),
                                method=TwoTower.encode_image)

    def image_features(self, params, images, mean, std, blocks) -> tuple:
        """The image tower's token maps ``[B, N, width]`` after each of its encoder blocks
        ``blocks`` (0 = the first), for images in the ``(mean, std)`` normalisation; captured
        with Flax's ``capture_intermediates``, so gradients flow back to ``images``."""
        _, state = self.model.apply(
            {"params": params}, self.images_in(images, mean, std), method=TwoTower.encode_image,
            capture_intermediates=_is_encoder_block, mutable=["intermediates"])
        found = state["intermediates"]["image_tower"]["encoder"]
        return tuple(found[f"block_{i}"]["__call__"][0] for i in blocks)

    @property
    def image_depth(self) -> int:
        """The number of encoder blocks of the image tower."""
        return self.model.image_tower.size()["depth"]

    def encode_text(self, params, tokens):
        """L2-normalised text embeddings of this model's tokens."""
        return self.model.apply({"params": params}, tokens, method=TwoTower.encode_text)

    def logit_scale(self, params):
        """The model's learned temperature ``exp(logit_scale)``: how sharply it tells captions apart."""
        return jnp.exp(params["logit_scale"])

    @property
    def embed_dim(self) -> int:
        return self.model.embed_dim


def _is_encoder_block(module, method: str) -> bool:
    """Whether ``module.method`` is an encoder block's call (``block_<i>``, remat or not)."""
    return method == "__call__" and (module.name or "").startswith("block_")


def load(spec: str, config: Optional[ml_collections.ConfigDict] = None, shapes_only: bool = False):
    """``(FrozenClip, params, tokenizer)`` for ``spec``: ``workdir:DIR`` (or a bare path) with
    ``config`` the contrastive config that trained it, or ``hf_clip:DIR``. ``shapes_only``:
    abstract params (``ShapeDtypeStruct``s) of the model the config (or the folder's
    config.json) describes, no weights or tokenizer file read."""
    kind, path = init_from.parse(spec)
    if kind == "workdir":
        if config is None:
            raise ValueError(f"Reading the contrastive run {path!r} needs the config it was "
                             "trained with (to build its model and tokenizer).")
        tokenizer = vocab.ensure_tokenizer(config, path, shapes_only)
        model = factory.build_two_tower(config.model, config.loss, tokenizer.vocab_size,
                                        tokenizer.pad_id, tokenizer.eos_id)
        clip = FrozenClip(model, int(config.data.image_size), *datasets.normalisation(config.data))
        if shapes_only:
            return clip, _abstract_params(clip, config.tokenizer.max_len), tokenizer
        return clip, init_from.restore_params(path), tokenizer
    if kind == "hf_clip" and shapes_only:
        text, vision, top = hf_clip.clip_configs(
            weights_files.read_json(os.path.join(path, "config.json")))
        clip = FrozenClip(hf_clip.clip_model(text, vision, top), int(vision["image_size"]),
                          tuple(datasets.CLIP_MEAN), tuple(datasets.CLIP_STD))
        tokenizer = tokenizers.TokenizerShape(text["vocab_size"], 77)
        return clip, _abstract_params(clip, 77), tokenizer
    if kind == "hf_clip":
        from multimodal_jax.data.clip_bpe import ClipBpeTokenizer  # noqa: PLC0415
        model, variables = hf_clip.load_hf_clip(path)
        size = weights_files.read_json(os.path.join(path, "config.json"))["vision_config"]["image_size"]
        tokenizer = ClipBpeTokenizer(path, max_len=77)
        return (FrozenClip(model, int(size), tuple(datasets.CLIP_MEAN), tuple(datasets.CLIP_STD)),
                variables["params"], tokenizer)
    raise ValueError(f"A frozen contrastive model is read from one of {KINDS} ('KIND:PATH'), "
                     f"not {kind!r} ({spec!r}).")


def _abstract_params(clip: FrozenClip, max_len: int):
    """The shapes of ``clip``'s params, from its init (nothing is computed)."""
    images = jnp.zeros((1, clip.image_size, clip.image_size, 3), jnp.float32)
    tokens = jnp.zeros((1, max_len), jnp.int32)
    return jax.eval_shape(lambda key: clip.model.init(key, images=images, tokens=tokens),
                          jax.random.key(0))["params"]


def load_named(config: ml_collections.ConfigDict, source: str, shapes_only: bool = False):
    """``load`` of ``source``: the name of one of ``config.prerequisites`` (its run, read with
    its config; the config's prerequisites are resolved to paths by now), or a spec such as
    ``hf_clip:DIR``."""
    runs = config.get("prerequisites", {})
    if source in runs:
        return load(runs[source].workdir, runs[source].config, shapes_only)
    return load(source, shapes_only=shapes_only)
