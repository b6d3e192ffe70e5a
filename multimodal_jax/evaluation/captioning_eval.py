"""Evaluates a captioner on each configured split: generated captions (attribute accuracy on the
built-in dataset, BLEU-4 and CIDEr-D against the references), the teacher-forced loss, and
generative zero-shot classification: every class prompt is scored by its log-likelihood under
the decoder given the image (averaged over templates) and the best class is the prediction.

Metrics are keyed ``caption/{split}/...``: ``attr_acc_all``, ``attr_acc_shape_color``, ...,
``bleu4``, ``cider``, ``loss``, ``token_accuracy``, ``zeroshot_top1``, ``zeroshot_top5``.
"""

import functools
import re
from typing import Callable
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from multimodal_jax import fields
from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import records
from multimodal_jax.evaluation import base
from multimodal_jax.evaluation import caption_attributes
from multimodal_jax.evaluation import caption_figure
from multimodal_jax.evaluation import caption_metrics
from multimodal_jax.evaluation import contrastive_eval
from multimodal_jax.evaluation import encode
from multimodal_jax.evaluation import figures
from multimodal_jax.models import decoding

ATTRIBUTES = ("builtin", "none")
DECODING_FIELDS = ("method", "beam_size", "length_penalty", "temperature", "top_k", "use_cache")
EVALUATION_FIELDS = ("batch_size", "splits", "attributes", "zeroshot_splits", "zeroshot_filter",
                     "class_names", "templates")


def check_config(config: ml_collections.ConfigDict) -> None:
    """Clear errors for ``config.decoding`` and the captioning ``config.evaluation`` fields."""
    for block, names in (("decoding", DECODING_FIELDS), ("evaluation", EVALUATION_FIELDS)):
        missing = [f for f in names if f not in config.get(block, {})]
        if missing:
            raise ValueError(f"config.{block} lacks {missing}: the captioning task reads "
                             f"{list(names)} there (see configs/caption_shapes.py).")
    dec = config.decoding
    if dec.method not in decoding.METHODS:
        raise ValueError(f"config.decoding.method={dec.method!r}; choose one of "
                         f"{decoding.METHODS}.")
    if not (isinstance(dec.beam_size, int) and dec.beam_size >= 1):
        raise ValueError(f"config.decoding.beam_size must be an integer >= 1, got "
                         f"{dec.beam_size!r}.")
    if dec.method == "sample" and not dec.temperature > 0:
        raise ValueError(f"config.decoding.temperature must be > 0 for sampling, got "
                         f"{dec.temperature}.")
    if dec.get("top_k", 0) < 0:
        raise ValueError(f"config.decoding.top_k must be >= 0 (0 = no cut), got {dec.top_k}.")
    ev = config.evaluation
    if ev.attributes not in ATTRIBUTES:
        raise ValueError(f"config.evaluation.attributes={ev.attributes!r}; choose one of "
                         f"{ATTRIBUTES}.")
    if ev.attributes == "builtin" and not datasets.is_builtin(config.data.name):
        raise ValueError("config.evaluation.attributes='builtin' reads the built-in dataset's "
                         f"shapes and colours; {config.data.name!r} has none: set it to 'none'.")
    fields.string_list(ev.splits, "config.evaluation.splits", allow_empty=True)
    if ev.zeroshot_splits and not config.data.get("label_key"):
        raise ValueError("Generative zero-shot needs class labels: set config.data.label_key, or "
                         "config.evaluation.zeroshot_splits=() for a dataset without them.")
    contrastive_eval.check_config(config)  # the same zero-shot fields


def fix_articles(text: str) -> str:
    """"a orange ring" -> "an orange ring": prompts read as the captions the decoder learned."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def reference_captions(data_cfg: ml_collections.ConfigDict, split: str) -> list[list[str]]:
    """Every reference caption of each example of ``split``, in the order of the evaluation
    stream (file order); ``data.text_key`` may name a list of captions (``captions/text``)."""
    ds = records.read(datasets.builder(data_cfg), split,
                      {data_cfg.image_key: tfds.decode.SkipDecoding()})

    def text_of(example):
        for part in data_cfg.text_key.split("/"):
            example = example[part]
        return example

    refs = []
    for value in ds.map(text_of).as_numpy_iterator():
        values = [value] if isinstance(value, bytes) else list(np.asarray(value).reshape(-1))
        refs.append([v.decode("utf-8") for v in values])
    return refs


def _with_attribute_labels(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The data config whose eval labels are the columns ``caption_attributes.LABEL_KEYS``."""
    out = ml_collections.ConfigDict(data_cfg.to_dict())
    out.label_key, out.extra_label_keys = "label", caption_attributes.LABEL_KEYS[1:]
    return out


class Evaluator(base.Evaluator):
    """A captioner's evaluation, its functions jitted once per run. ``losses(params, images,
    tokens)`` is the task's jitted ``eval_step``."""

    def __init__(self, model, config: ml_collections.ConfigDict, tokenizer, losses: Callable):
        self.config, self.tokenizer, self.losses = config, tokenizer, losses
        ids = dict(bos_id=tokenizer.bos_id, pad_id=tokenizer.pad_id)
        self.generate = decoding.make_generate(model, config.decoding, config.tokenizer.max_len,
                                               eos_id=tokenizer.eos_id, seed=config.seed, **ids)
        chunk = config.evaluation.get("zeroshot_chunk", 16)
        self.prompt_scores = functools.partial(decoding.prompt_logprobs, model, chunk=chunk, **ids)
        self.builtin = config.evaluation.attributes == "builtin"
        self.data = _with_attribute_labels(config.data) if self.builtin else config.data

    def _batches(self, data_cfg, split: str, filter=None):  # noqa: A002
        return pipeline.make_eval_iterator(data_cfg, split, self.tokenizer,
                                           self.config.evaluation.batch_size, filter=filter)

    def captions(self, params, mesh: Mesh, split: str) -> tuple[list[str], dict]:
        """The generated caption of every example of ``split``, and the ``map_dataset`` result
        (with the attribute labels on the built-in dataset)."""
        keep = ("label",) if self.builtin else ()
        result = encode.map_dataset(self.generate, params, self._batches(self.data, split), mesh,
                                    ("image",), keep)
        return self.tokenizer.decode(result["out"]), result

    def split_metrics(self, params, mesh: Mesh, split: str) -> dict[str, float]:
        """Generated-caption metrics and the teacher-forced loss of ``split``."""
        captions, result = self.captions(params, mesh, split)
        refs = reference_captions(self.config.data, split)
        if len(refs) != len(captions):
            raise RuntimeError(f"{len(refs)} reference lists for {len(captions)} captions of "
                               f"{split!r}.")
        out = {"bleu4": caption_metrics.bleu(captions, refs),
               "cider": caption_metrics.cider(captions, refs), "examples": float(len(captions))}
        if self.builtin:
            out.update(caption_attributes.attribute_metrics(captions, result["label"]))
        cols = encode.map_dataset(self.losses, params, self._batches(self.config.data, split), mesh,
                                  ("image", "tokens"))["out"]
        out["loss"] = float(cols[:, 0].sum() / max(cols[:, 1].sum(), 1))
        out["token_accuracy"] = float(cols[:, 2].sum() / max(cols[:, 1].sum(), 1))
        return {f"caption/{split}/{k}": v for k, v in out.items()}

    def prompts(self) -> tuple[np.ndarray, int, int]:
        """Token rows of every (template, class) prompt, template-major; classes; templates."""
        names, templates = contrastive_eval.class_names_and_templates(self.config)
        fix = fix_articles if self.config.evaluation.get("fix_articles", True) else (lambda t: t)
        texts = [fix(t.format(n)) for t in templates for n in names]
        tokens = self.tokenizer.encode(texts, self.config.tokenizer.max_len)
        used = int(np.max(np.nonzero((tokens != self.tokenizer.pad_id).any(axis=0))[0])) + 1
        return tokens[:, :used], len(names), len(templates)  # padding columns cost time only

    def zeroshot(self, params, mesh: Mesh, split: str) -> dict[str, float]:
        """Generative zero-shot top-1 / top-5 on ``split`` (``zeroshot_filter`` applied)."""
        tokens, classes, templates = self.prompts()
        tokens = jnp.asarray(tokens)
        ev = self.config.evaluation
        batches = self._batches(self.config.data, split, tuple(ev.zeroshot_filter) or None)
        result = encode.map_dataset(lambda p, x: self.prompt_scores(p, x, tokens), params, batches,
                                    mesh, ("image",), ("label",))
        scores = result["out"].reshape(-1, templates, classes).mean(axis=1)
        labels = result["label"].astype(np.int64)
        true = scores[np.arange(len(labels)), labels][:, None]
        others = np.arange(classes)[None] != labels[:, None]
        ranks = np.sum(~(scores < true) & others, axis=1)  # ties and NaN count against
        return {f"caption/{split}/zeroshot_top1": float(np.mean(ranks < 1)),
                f"caption/{split}/zeroshot_top5": float(np.mean(ranks < 5))}

    def picture(self, params, mesh: Mesh, split: str, path: str, shown: int = 16) -> None:
        """Writes the first ``shown`` images of ``split`` with their generated captions."""
        batch = next(iter(self._batches(self.data, split)))
        keep = ("image", "tokens") + (("label",) if self.builtin else ())
        result = encode.map_dataset(self.generate, params, [batch], mesh, ("image",), keep)
        result = {k: v[:shown] for k, v in result.items()}
        generated = self.tokenizer.decode(result["out"])
        if jax.process_index() != 0:
            return
        correct = None
        if self.builtin:
            correct = [caption_attributes.judge(c, *caption_attributes.image_attributes(row))["all"]
                       for c, row in zip(generated, result["label"])]
        images = figures.to_uint8(result["image"], *datasets.normalisation(self.config.data))
        dec = self.config.decoding
        references = self.tokenizer.decode(result["tokens"])
        caption_figure.write(images, generated, references, path, correct,
                             title=f"{split}: generated captions ({dec.method} decoding)")

    def evaluate(self, params, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        """Every split of ``evaluation.splits`` and ``evaluation.zeroshot_splits``; the picture."""
        ev, metrics = self.config.evaluation, {}
        for split in ev.splits:
            metrics.update(self.split_metrics(params, mesh, split))
        for split in ev.zeroshot_splits:
            metrics.update(self.zeroshot(params, mesh, split))
        if picture_path and ev.splits:  # every process decodes, process 0 draws
            self.picture(params, mesh, ev.splits[0], picture_path)
        return metrics
