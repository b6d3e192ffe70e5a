"""A trained run (or a published CLIP) as an object other code calls, jitted and batched:

    from multimodal_jax import inference
    run = inference.load("workdirs/clip_shapes")            # its recorded config, newest step
    images = run.embed_images(["cat.png", "dog.jpg"])        # [2, D] float32, L2-normalised
    texts = run.embed_texts(["a red circle", "a blue star"])  # [2, D]
    print(run.classify(["cat.png"], ["red circle", "blue star"])[0]["top1"])

``embed_images``, ``embed_texts``, ``classify`` (zero-shot with prompt templates for a
contrastive run, the head for a classifier), ``caption`` (captioning runs) and ``generate``
(GAN runs) take file paths or uint8 pixel arrays; images are preprocessed as evaluation
preprocesses the dataset (``data/image_files.py``). ``run.model``, ``run.params`` and
``run.preprocess`` are there for JAX code of one's own, e.g. ``jax.jit(run.image_encoder)``.
``load_weights("hf_clip:DIR")`` (or ``"hf_siglip:DIR"``) reads a published Hugging Face CLIP (or
SigLIP) the same way.
"""

import dataclasses
import os
from typing import Any
from typing import Optional
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from multimodal_jax import tasks as tasks_lib
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import image_files
from multimodal_jax.data import shapes_captions
from multimodal_jax.data import vocab
from multimodal_jax.evaluation import explain as explain_lib
from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import zeroshot
from multimodal_jax.models import decoding
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.pretrained import frozen_clip
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import prerequisites
from multimodal_jax.runtime import run_record
from multimodal_jax.tasks import adversarial
from multimodal_jax.tasks import captioning
from multimodal_jax.tasks import classification
from multimodal_jax.tasks import contrastive
from multimodal_jax.tasks import truncation

BATCH_SIZE = 64
WHAT_EACH_DOES = {"embed_images": ("contrastive", "classification"),
                  "embed_texts": ("contrastive",), "explain": ("contrastive",),
                  "classify": ("contrastive", "classification"),
                  "caption": ("captioning",), "generate": ("adversarial",)}


class UnreadableImages(ValueError):
    """Some of the image files given cannot be read; the message lists each with its reason."""


def _padded_batches(arrays: tuple, batch_size: int):
    """Rows of ``arrays`` (equal lengths) in chunks of one size, the last padded by repeating its
    first row, so that a jitted function compiles once; with the number of real rows."""
    total = len(arrays[0])
    size = min(batch_size, 1 << max(total - 1, 0).bit_length())
    for start in range(0, total, size):
        chunks = [a[start:start + size] for a in arrays]
        n = len(chunks[0])
        if n < size:
            chunks = [np.concatenate([c, np.repeat(c[:1], size - n, axis=0)]) for c in chunks]
        yield chunks, n


def run_batched(fn, params, *arrays: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """``fn(params, *chunks)`` over the rows of ``arrays`` in fixed-size chunks, the results
    concatenated as numpy."""
    outs = [np.asarray(jax.device_get(fn(params, *chunks)))[:n]
            for chunks, n in _padded_batches(arrays, batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


@dataclasses.dataclass
class Run:
    """A loaded run: its config, task, model, parameters (on this process's first device),
    tokenizer and image format. Build it with ``load`` or ``load_weights``."""

    config: ml_collections.ConfigDict
    task: str
    model: Any
    params: Any
    tokenizer: Any
    step: int
    source: str
    extras: dict = dataclasses.field(default_factory=dict)
    batch_size: int = BATCH_SIZE

    def __post_init__(self):
        self.preprocessor = image_files.Preprocessor(self.config.data)
        self._jitted: dict = {}

    # ----------------------------------------------------------------------------- images

    @property
    def image_size(self) -> int:
        return self.preprocessor.image_size

    @property
    def normalisation(self) -> tuple[tuple, tuple]:
        """``(mean, std)`` of the model's input pixels (of [0, 1] images)."""
        return datasets.normalisation(self.config.data)

    def preprocess(self, images) -> np.ndarray:
        """File paths or uint8 arrays -> float32 ``[N, S, S, 3]`` as the model reads them;
        ``UnreadableImages`` lists every file that cannot be read. (``image_files.Images``,
        read already, pass as they are.)"""
        if isinstance(images, image_files.Images):
            return images.pixels
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        paths = [os.fspath(i) for i in images if isinstance(i, (str, os.PathLike))]
        if paths and len(paths) != len(images):
            raise ValueError("Give images as file paths or as arrays, not a mix of both.")
        if not paths:
            return self.preprocessor.pixels(list(images))
        read = self.preprocessor.files(paths)
        if read.unreadable:
            listed = "; ".join(f"{name}: {why}" for name, why in read.unreadable)
            raise UnreadableImages(f"{len(read.unreadable)} image file(s) cannot be read: {listed}")
        return read.pixels

    def need(self, what: str) -> None:
        """``ValueError`` unless this run can do ``what`` (a method name)."""
        if self.task not in WHAT_EACH_DOES[what]:
            runs = " or ".join(WHAT_EACH_DOES[what])
            raise ValueError(f"{what} needs a {runs} run; {self.source} holds a {self.task} run.")

    def _fn(self, name: str, make):
        if name not in self._jitted:
            self._jitted[name] = jax.jit(make())
        return self._jitted[name]

    # ----------------------------------------------------------------------------- encoders

    @property
    def image_encoder(self):
        """Pure ``(params, images) -> [B, D]`` L2-normalised embeddings of preprocessed images
        (the projected embedding of a contrastive run, a classifier's pooled features)."""
        self.need("embed_images")
        if self.task == "contrastive":
            return lambda p, x: self.model.apply({"params": p}, x, method=TwoTower.encode_image)
        return lambda p, x: _l2(self.model.apply({"params": p}, x)["pooled"])

    @property
    def text_encoder(self):
        """Pure ``(params, tokens) -> [B, D]`` L2-normalised text embeddings."""
        self.need("embed_texts")
        return lambda p, t: self.model.apply({"params": p}, t, method=TwoTower.encode_text)

    def embed_images(self, images) -> np.ndarray:
        """float32 ``[N, D]``, unit rows, of file paths or uint8 arrays."""
        fn = self._fn("image", lambda: self.image_encoder)
        return run_batched(fn, self.params, self.preprocess(images), batch_size=self.batch_size).astype(np.float32)

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """int32 ``[N, max_len]`` token rows in the run's layout."""
        return self.tokenizer.encode(list(texts), self.config.tokenizer.max_len)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[N, D]``, unit rows."""
        fn = self._fn("text", lambda: self.text_encoder)
        return run_batched(fn, self.params, self.tokenize(texts), batch_size=self.batch_size).astype(np.float32)

    # ----------------------------------------------------------------------------- classify

    def default_templates(self) -> list[str]:
        """The run's zero-shot prompt templates (``config.evaluation.templates``)."""
        templates = (self.config.get("evaluation") or {}).get("templates", "builtin")
        return list(shapes_captions.ZEROSHOT_TEMPLATES if templates == "builtin" else templates)

    def class_names(self) -> list[str]:
        """A classifier's class names: ``evaluation.class_names``, else the dataset's label
        names (read from its prepared metadata), else ``"0"``, ``"1"``, ..."""
        names = (self.config.get("evaluation") or {}).get("class_names")
        if isinstance(names, (list, tuple)) and names:
            return list(names)
        try:
            builder = tfds.builder(self.config.data.name, data_dir=self.config.data.get("data_dir") or None)
            feature = builder.info.features[datasets.field(self.config.data, "label_key") or "label"]
            return [n.replace("_", " ") for n in feature.names]
        except Exception:  # noqa: BLE001 - any failure to read the metadata: numbered classes
            count = self.config.get("num_classes") or self.config.condition.num_classes
            return [str(i) for i in range(int(count))]

    def class_scores(self, images, classes: Optional[Sequence[str]] = None,
                     templates: Optional[Sequence[str]] = None) -> tuple[np.ndarray, list[str]]:
        """Probabilities ``[N, C]`` and the class names: zero-shot over ``classes`` (prompts
        from ``templates``, the run's by default; softmax of the scaled similarities, or each
        class's sigmoid for a SigLIP run), or a classifier's softmax over its classes."""
        self.need("classify")
        pixels = self.preprocess(images)
        if self.task == "classification":
            fn = self._fn("logits", lambda: lambda p, x: self.model.apply({"params": p}, x)["logits"])
            logits = run_batched(fn, self.params, pixels, batch_size=self.batch_size)
            return np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)), self.class_names()
        if not classes:
            raise ValueError("Zero-shot classification needs class names, e.g. "
                             "classify(images, ['red circle', 'blue square']).")
        text_fn = self._fn("text", lambda: self.text_encoder)
        class_emb = zeroshot.class_embeddings(
            lambda t: text_fn(self.params, t), self.tokenize, list(classes),
            list(templates or self.default_templates()), batch_size=self.batch_size)
        image_emb = run_batched(self._fn("image", lambda: self.image_encoder), self.params,
                                pixels, batch_size=self.batch_size)
        logits = float(np.exp(self.params["logit_scale"])) * (image_emb @ class_emb.T)
        if "logit_bias" in self.params:
            return np.asarray(jax.nn.sigmoid(logits + float(self.params["logit_bias"]))), list(classes)
        return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1)), list(classes)

    def classify(self, images, classes: Optional[Sequence[str]] = None,
                 templates: Optional[Sequence[str]] = None, k: int = 5) -> list[dict]:
        """One ``{"top1": class, "topk": [[class, prob], ...]}`` per image (``k`` best)."""
        probs, names = self.class_scores(images, classes, templates)
        return [top_k(row, names, k) for row in probs]

    # ----------------------------------------------------------------------------- explain

    def explain(self, images, texts: Sequence[str],
                methods: Sequence[str] = explain_lib.METHODS) -> dict:
        """Why each image matches each text: ``{method: [N_images, N_texts, gh, gw]}`` relevance
        over the patches (``evaluation.explain``; larger is more relevant) and ``"logits"``
        ``[N_images, N_texts]``, the logit each map explains."""
        self.need("explain")
        unknown = [m for m in methods if m not in explain_lib.METHODS]
        if unknown or not methods:
            raise ValueError(f"Explanation methods {unknown or 'none'}: choose among "
                             f"{explain_lib.METHODS}.")
        pixels, text_emb = self.preprocess(images), self.embed_texts(list(texts))
        rows, cols = len(pixels), len(text_emb)
        methods = tuple(methods)

        def make():
            def maps(p, x, t):
                out = explain_lib.relevance_maps(self.model, p, x, t, methods)
                return {**out, "logits": explain_lib.pair_logits(self.model, {"params": p}, x, t)}
            return maps
        fn = self._fn(("explain", methods), make)
        out = explain_lib.batched(fn, self.params, np.repeat(pixels, cols, axis=0),
                                  np.tile(text_emb, (rows, 1)), self.batch_size)
        return {k: v.reshape((rows, cols) + v.shape[1:]) for k, v in out.items()}

    # ----------------------------------------------------------------------------- generate

    def caption(self, images, method: Optional[str] = None, beam_size: Optional[int] = None,
                temperature: Optional[float] = None, top_k: Optional[int] = None,
                seed: int = 0) -> list[str]:
        """Captions of the images: the run's ``config.decoding`` (greedy by default), changed by
        the arguments given (``method`` "greedy", "beam" or "sample")."""
        self.need("caption")
        chosen = dict(method=method, beam_size=beam_size, temperature=temperature, top_k=top_k)
        settings = {**dict(self.config.get("decoding") or {}),
                    **{k: v for k, v in chosen.items() if v is not None}}
        if settings.get("method", "greedy") not in decoding.METHODS:
            raise ValueError(f"method={settings['method']!r}; choose one of {decoding.METHODS}.")
        tok = self.tokenizer
        generate = decoding.make_generate(self.model, settings, self.config.tokenizer.max_len,
                                          bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id,
                                          seed=seed)
        rows = run_batched(generate, self.params, self.preprocess(images), batch_size=self.batch_size)
        return list(tok.decode(rows)) if len(rows) else []

    def generate(self, prompts: Sequence[str], n: int = 4, seed: int = 0,
                 psi: Optional[float] = None) -> np.ndarray:
        """uint8 images ``[len(prompts), n, S, S, 3]``: ``n`` samples per prompt (a caption, or
        a class name for a class-conditional GAN), noise from ``seed``, truncated by ``psi``
        (default: the run's ``config.evaluation.psi``, else 1 = none); the GAN's own sampler
        (``tasks.adversarial.generate``, which its evaluation uses too)."""
        self.need("generate")
        psi = self.sampling_psi(psi)
        setup = self.extras["setup"]
        raw = np.repeat(self._conditions(list(prompts)), n, axis=0)
        z = np.asarray(jax.random.normal(jax.random.key(seed), (len(raw), setup.z_dim)), np.float32)
        fn = self._fn(f"generate_psi_{psi!r}", lambda: lambda p, z, cond: adversarial.generate(
            setup, p["g"], p["frozen"], z, cond, psi))
        images = run_batched(fn, {"g": self.params["g_ema"], "frozen": self.extras["frozen"]},
                             z, raw, batch_size=self.batch_size)
        pixels = figures.to_uint8(images, *datasets.normalisation(self.config.data))
        return pixels.reshape((len(prompts), n) + pixels.shape[1:])

    def sampling_psi(self, psi: Optional[float] = None) -> float:
        """The truncation ``generate`` samples at: ``psi``, else the run's
        ``config.evaluation.psi``, else 1 (none); an error unless in [0, 1]."""
        if psi is None:
            psi = self.config.get("evaluation", {}).get("psi", 1.0)
            return truncation.check_psi(psi, "config.evaluation.psi")
        return truncation.check_psi(psi, "psi (--psi)")

    def _conditions(self, prompts: list[str]) -> np.ndarray:
        """The GAN's raw conditions of ``prompts``: caption tokens, or class ids."""
        if self.config.condition.kind == "text":
            return self.extras["cond_tokenizer"].encode(prompts, self.extras["cond_max_len"])
        names = self.class_names()
        unknown = [p for p in prompts if p not in names]
        if unknown:
            raise ValueError(f"This GAN is class-conditional: each prompt must be one of its "
                             f"classes {names[:12]}{' ...' if len(names) > 12 else ''}; "
                             f"not {unknown}.")
        return np.asarray([names.index(p) for p in prompts], np.int32)


def _l2(x):
    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top_k(probs: np.ndarray, names: Sequence[str], k: int) -> dict:
    """``{"top1": name, "topk": [[name, prob], ...]}`` of one row of class probabilities."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(1, k)]
    return {"top1": names[order[0]], "topk": [[names[i], round(float(probs[i]), 6)] for i in order]}


# ----------------------------------------------------------------------------- loading


def _build(config: ml_collections.ConfigDict, tokenizer):
    """The task's model for ``config`` and its tokenizer."""
    if config.task == "contrastive":
        return contrastive.build_model(config, tokenizer)
    if config.task == "captioning":
        return captioning.build_model(config, tokenizer)
    return classification.build_model(config)


def load(workdir: str, config: Optional[ml_collections.ConfigDict] = None,
         batch_size: int = BATCH_SIZE) -> Run:
    """The newest checkpoint of ``workdir`` with the config its run recorded (or ``config``,
    which must describe the same model: ``run_record.check_matches``)."""
    step = workdir_lib.latest_step(workdir)
    if config is None:
        config = run_record.load(workdir)
    else:
        run_record.check_matches(config, workdir)
    tasks_lib.get_task(config.task)
    if step is None:
        if config.get("init_from") and config.get("init_towers") == "all":
            return _from_weights(config, batch_size, config.init_from)
        raise FileNotFoundError(f"No checkpoint in {workdir!r}: train first "
                                "(python -m train --config ... --workdir ...).")
    config = prerequisites.resolve(config, workdir)
    params = init_from.restore_params(workdir)
    if config.task == "adversarial":
        return _gan(config, workdir, params, step, batch_size)
    tokenizer = None if config.task == "classification" else vocab.trained_tokenizer(config, workdir)
    return Run(config, config.task, _build(config, tokenizer), params, tokenizer, step,
               f"the workdir {workdir!r}", batch_size=batch_size)


def _gan(config, workdir: str, params: dict, step: int, batch_size: int) -> Run:
    """A GAN run: its EMA generator and, for text, the frozen conditioning model."""
    clip, frozen, tokenizer = None, {}, None
    if config.condition.kind == "text":
        clip, clip_params, tokenizer = frozen_clip.load_named(config, config.condition.encoder)
        frozen = {"clip": clip_params}
    setup = adversarial.make_setup(config, clip)
    max_len = getattr(tokenizer, "max_len", None) or _conditioning_max_len(config)
    extras = dict(setup=setup, frozen=frozen, cond_tokenizer=tokenizer, cond_max_len=max_len)
    return Run(config, "adversarial", setup.generator, params, tokenizer, step,
               f"the workdir {workdir!r}", extras, batch_size)


def _conditioning_max_len(config) -> int:
    """The token length of the GAN's conditioning model (its prerequisite's tokenizer)."""
    runs = config.get("prerequisites") or {}
    encoder = config.condition.encoder
    return int(runs[encoder].config.tokenizer.max_len) if encoder in runs else 77


def _from_weights(config, batch_size: int, spec: str) -> Run:
    from multimodal_jax.data import tokenizers  # noqa: PLC0415 - only for published weights

    tokenizer = tokenizers.get_tokenizer(config.tokenizer)
    model = contrastive.build_model(config, tokenizer)
    return Run(config, "contrastive", model, init_from.load_two_tower(spec), tokenizer, 0,
               f"the weights {spec!r}", batch_size=batch_size)


def load_weights(spec: str, batch_size: int = BATCH_SIZE) -> Run:
    """A published model: ``hf_clip:DIR`` (a ``save_pretrained`` CLIP folder with its CLIP BPE
    files) or ``hf_siglip:DIR`` (SigLIP / SigLIP 2 with its ``spiece.model``), with the image size
    and normalisation of its ``preprocessor_config.json``."""
    from multimodal_jax.configs import clip_pretrained  # noqa: PLC0415 - configs import the runtime
    from multimodal_jax.configs import siglip_pretrained  # noqa: PLC0415 - likewise

    kind, path = init_from.parse(spec)
    configs = {"hf_clip": clip_pretrained, "hf_siglip": siglip_pretrained}
    if kind not in configs:
        raise ValueError(f"--weights={spec!r}: published weights are read as 'hf_clip:DIR' or "
                         "'hf_siglip:DIR' (a Hugging Face folder); a run of ours is --workdir DIR.")
    init_from.check_spec(spec)
    return _from_weights(configs[kind].get_config(path), batch_size, f"{kind}:{path}")


__all__ = ["Run", "UnreadableImages", "load", "load_weights", "run_batched", "top_k"]
