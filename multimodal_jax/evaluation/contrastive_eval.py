"""Evaluates a two-tower model: zero-shot classification on each configured split and
image<->text retrieval, with the encoders jitted over the device mesh; with
``evaluation.languages``, both in every language of the multilingual built-in dataset
(``multilingual.py``); with ``evaluation.explain.split``, the pointing game of its relevance
maps (``explain.py``)."""

import functools
from typing import Optional

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from multimodal_jax import fields
from multimodal_jax.data import datasets
from multimodal_jax.data import device_input
from multimodal_jax.data import image_files
from multimodal_jax.data import pipeline
from multimodal_jax.data import shapes_captions
from multimodal_jax.evaluation import base
from multimodal_jax.evaluation import encode
from multimodal_jax.evaluation import explain
from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import linear_probe
from multimodal_jax.evaluation import multilingual
from multimodal_jax.evaluation import retrieval
from multimodal_jax.evaluation import zeroshot


class Encoders:
    """The model's encoders, jitted once per run: ``image(params, images)``,
    ``text(params, tokens)`` and ``both(params, images, tokens)`` (embeddings side by side)."""

    def __init__(self, model):
        apply = model.apply
        self.image = jax.jit(lambda p, x: apply({"params": p}, x, method=type(model).encode_image))
        self.text = jax.jit(lambda p, t: apply({"params": p}, t, method=type(model).encode_text))
        self.both = jax.jit(lambda p, x, t: _concat(apply({"params": p}, images=x, tokens=t)))
        self.features = jax.jit(lambda p, x: apply({"params": p}, x, method=_pooled_image))


def _pooled_image(model, images):
    """The image tower's pooled features (before the projection): what a linear probe reads."""
    return model.image_tower(images)["pooled"]


def class_names_and_templates(config: ml_collections.ConfigDict) -> tuple[list[str], list[str]]:
    """The zero-shot classes and prompt templates: the dataset's label names with the
    built-in dataset's templates (``"builtin"``), or those listed in the config (a tuple, or
    a string such as ``"red circle,blue square"``)."""
    ev = config.evaluation
    if ev.class_names == "builtin":
        builder = datasets.builder(config.data)  # "_" read as a space, as in caption templates
        names = [n.replace("_", " ") for n in builder.info.features[ev.get("label_key", "label")].names]
    else:
        names = list(fields.string_list(ev.class_names, "config.evaluation.class_names"))
    templates = ev.get("templates", "builtin")
    if templates == "builtin":
        return names, list(shapes_captions.ZEROSHOT_TEMPLATES)
    return names, list(template_list(templates, "config.evaluation.templates"))


def template_list(value, where: str) -> tuple[str, ...]:
    """``fields.string_list`` of prompt templates, each with a ``{}`` for the class name."""
    templates = fields.string_list(value, where)
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"{where}: {template!r} has no '{{}}' where the class name goes, "
                             "e.g. 'a photo of a {}.'.")
    return templates


def check_config(config: ml_collections.ConfigDict) -> None:
    """The zero-shot fields of ``config.evaluation``: split, class and template lists of the
    right types (non-empty where they must be), and a filter of the form (feature, value)."""
    ev = config.evaluation
    splits = fields.string_list(ev.get("zeroshot_splits", ()), "config.evaluation.zeroshot_splits",
                                allow_empty=True)
    if ev.get("class_names", "builtin") != "builtin":  # empty only where nothing classifies
        fields.string_list(ev.class_names, "config.evaluation.class_names", allow_empty=not splits)
    elif splits and not config.data.get("label_key"):
        raise ValueError("Zero-shot with config.evaluation.class_names='builtin' reads the label "
                         "names of config.data.label_key, which is not set: set it, list the "
                         "classes, or set config.evaluation.zeroshot_splits=() for a dataset "
                         "without labels.")
    if ev.get("templates", "builtin") != "builtin":
        template_list(ev.templates, "config.evaluation.templates")
    zeroshot_filter = ev.get("zeroshot_filter", ())
    if zeroshot_filter and not (isinstance(zeroshot_filter, (tuple, list)) and len(zeroshot_filter) == 2
                                and isinstance(zeroshot_filter[0], str)):
        raise ValueError(f"config.evaluation.zeroshot_filter must be (feature, value), e.g. "
                         f"('num_objects', 1), or () for none; got {zeroshot_filter!r}.")


class Evaluator(base.Evaluator):
    """Zero-shot on ``evaluation.zeroshot_splits``, retrieval on ``retrieval_split`` and, if
    configured, a linear probe on the image tower's features."""

    def __init__(self, model, config: ml_collections.ConfigDict, tokenizer):
        self.encoders, self.config, self.tokenizer = Encoders(model), config, tokenizer
        self.model = model

    def evaluate(self, params, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        """All contrastive metrics, keyed like ``zeroshot/test/top1`` and
        ``retrieval/test/i2t_r1``."""
        ev, metrics = self.config.evaluation, {}
        if ev.get("languages"):  # per-language zero-shot and retrieval replace the English ones
            metrics.update(multilingual.evaluate(
                self.config, lambda split: self.split_image_embeddings(params, mesh, split),
                lambda texts: self.text_embeddings(params, mesh, texts),
                picture_path if jax.process_index() == 0 else None))
        else:
            metrics.update(self._english(params, mesh, picture_path))
        probe = ev.get("linear_probe")  # optional: a linear probe on the frozen image features
        if probe and (probe.get("methods") or probe.get("shots")):
            metrics.update(linear_probe.evaluate(self.encoders.features, params, self.config.data,
                                                 probe, mesh))
        if (ev.get("explain") or {}).get("split"):  # optional: the pointing game of its maps
            metrics.update(explain.evaluate(
                self.config, self.model, jax.tree.map(encode.gather, params),
                image_files.Preprocessor(self.config.data).pixels,
                lambda texts: self.text_embeddings(params, mesh, texts),
                picture_path if jax.process_index() == 0 else None))
        return metrics

    def _english(self, params, mesh: Mesh, picture_path: Optional[str]) -> dict[str, float]:
        """Zero-shot with the configured class names and templates, and retrieval."""
        ev, metrics = self.config.evaluation, {}
        if ev.zeroshot_splits:  # none for an image-text dataset without labels
            names, templates = class_names_and_templates(self.config)
            class_emb = self.class_embeddings(params, mesh, names, templates)
        for split in ev.zeroshot_splits:
            metrics.update(self.zeroshot(params, mesh, split, class_emb, names, picture_path))
        metrics.update(_retrieval(self.encoders, params, self.config, self.tokenizer, mesh,
                                  picture_path))
        return metrics

    def _text_encoder(self, params, mesh: Mesh):
        """tokens [batch_size, L] -> text embeddings on every process. Every process holds the
        same tokens and feeds its share (multi-host)."""
        def encode_tokens(tokens):
            return encode.gather(self.encoders.text(
                params, device_input.shard_for_mesh(_own_rows(tokens), mesh)))
        return encode_tokens

    def class_embeddings(self, params, mesh: Mesh, names, templates) -> np.ndarray:
        """One embedding per class of ``names``: its prompts' text embeddings, ensembled."""
        ev, max_len = self.config.evaluation, self.config.tokenizer.max_len
        return zeroshot.class_embeddings(
            self._text_encoder(params, mesh), lambda texts: self.tokenizer.encode(texts, max_len),
            names, templates, batch_size=ev.batch_size)

    def text_embeddings(self, params, mesh: Mesh, texts) -> np.ndarray:
        """L2-normalised embeddings [N, D] of texts every process holds alike."""
        tokens = self.tokenizer.encode(list(texts), self.config.tokenizer.max_len)
        return zeroshot.encode_in_chunks(self._text_encoder(params, mesh), tokens,
                                         self.config.evaluation.batch_size)

    def split_image_embeddings(self, params, mesh: Mesh, split: str) -> np.ndarray:
        """Image embeddings [N, D] of every example of ``split``, in the split's file order."""
        batches = pipeline.make_eval_iterator(self.config.data, split, None,
                                              self.config.evaluation.batch_size)
        result = encode.map_dataset(self.encoders.image, params, batches, mesh, ("image",),
                                    ("index",))
        ordered = np.empty_like(result["out"])
        ordered[result["index"]] = result["out"]
        return ordered

    def zeroshot(self, params, mesh: Mesh, split: str, class_emb, names,
                 picture_path: Optional[str] = None) -> dict[str, float]:
        """``zeroshot/{split}/top1`` and ``top5`` (and a confusion picture) of ``split``."""
        ev = self.config.evaluation
        batches = pipeline.make_eval_iterator(self.config.data, split, self.tokenizer,
                                              ev.batch_size, filter=tuple(ev.zeroshot_filter) or None)
        result = encode.map_dataset(self.encoders.image, params, batches, mesh, ("image",),
                                    ("label",))
        metrics = {f"zeroshot/{split}/{name}": value for name, value in
                   zeroshot.zeroshot_metrics(result["out"], result["label"], class_emb).items()}
        if picture_path and jax.process_index() == 0:
            confusion = zeroshot.zeroshot_confusion(result["out"], result["label"], class_emb)
            figures.confusion_matrix_png(
                confusion, names, picture_path.replace(".png", f"_zeroshot_{split}.png"),
                title=f"zero-shot on {split}: true class (rows) vs predicted")
        return metrics


def _own_rows(rows):
    """This process's equal share of rows that every process holds alike, so that the global
    batch ``shard_for_mesh`` assembles from all processes is ``rows`` once, not once per process."""
    n = jax.process_count()
    return np.asarray(rows).reshape((n, -1) + np.shape(rows)[1:])[jax.process_index()]


def _retrieval(encoders, params, config, tokenizer, mesh, picture_path):
    """Recall@1/5/10 both ways on the first ``retrieval_examples`` pairs of the split."""
    ev = config.evaluation
    split = ev.retrieval_split
    batches = pipeline.make_eval_iterator(config.data, split, tokenizer, ev.batch_size)
    take = functools.partial(_take_examples, limit=ev.retrieval_examples, batch_size=ev.batch_size)
    result = encode.map_dataset(encoders.both, params, take(batches), mesh, ("image", "tokens"),
                                ("image", "tokens"))
    result = {k: v[: ev.retrieval_examples] for k, v in result.items()}
    dim = result["out"].shape[1] // 2
    image_emb, text_emb = result["out"][:, :dim], result["out"][:, dim:]
    # Identical captions (frequent in the built-in dataset) count as the same text.
    text_ids = [t.tobytes() for t in result["tokens"]] if ev.retrieval_same_text_matches else None
    metrics = {f"retrieval/{split}/{k}": v for k, v in
               retrieval.retrieval_metrics(image_emb, text_emb, text_ids=text_ids).items()}
    if picture_path and jax.process_index() == 0:
        _retrieval_picture(image_emb, text_emb, result, config, tokenizer, picture_path)
    return metrics


def _concat(out):
    """Image and text embeddings side by side, so one pass gathers both."""
    return jax.numpy.concatenate([out["image_embedding"], out["text_embedding"]], axis=1)


def _take_examples(batches, limit: int, batch_size: int):
    """The first batches holding ``limit`` examples (whole batches; padding stays masked)."""
    for i, batch in enumerate(batches):
        if i * batch_size >= limit:
            return
        yield batch


def _retrieval_picture(image_emb, text_emb, result, config, tokenizer, path, shown: int = 8):
    """Writes a PNG of the first images with their caption and top-3 retrieved captions."""
    captions = [tokenizer.decode(t) for t in result["tokens"]]
    scores = image_emb[:shown] @ text_emb.T
    top = np.argsort(-scores, axis=1)[:, :3]
    images = figures.to_uint8(result["image"][:shown], *datasets.normalisation(config.data))
    figures.retrieval_grid(
        images, captions[:shown], [[captions[j] for j in row] for row in top],
        [[captions[j] == captions[i] for j in row] for i, row in enumerate(top)], path)
