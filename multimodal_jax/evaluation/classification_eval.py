"""Evaluates a classifier: top-1 / top-5 accuracy and loss on each configured split, a
confusion picture, and optionally a linear probe on its frozen features."""

from typing import Callable
from typing import Optional

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from multimodal_jax.data import pipeline
from multimodal_jax.evaluation import base
from multimodal_jax.evaluation import encode
from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import linear_probe
from multimodal_jax.evaluation import zeroshot

MAX_PICTURE_CLASSES = 100


def split_metrics(predict: Callable, params, config: ml_collections.ConfigDict, split: str,
                  mesh: Mesh) -> tuple[dict[str, float], dict]:
    """``classification/{split}/{top1,top5,loss,examples}`` and the per-example columns.

    ``predict(params, images, labels)`` is the jitted ``eval_step``: columns loss, top-1,
    top-5, predicted class."""
    ev = config.evaluation
    batches = pipeline.make_eval_iterator(config.data, split, None, ev.batch_size,
                                          filter=tuple(ev.get("filter", ())) or None)
    result = encode.map_dataset(predict, params, batches, mesh, ("image", "label"), ("label",))
    loss, top1, top5 = result["out"][:, 0], result["out"][:, 1], result["out"][:, 2]
    prefix = f"classification/{split}"
    return ({f"{prefix}/top1": float(top1.mean()), f"{prefix}/top5": float(top5.mean()),
             f"{prefix}/loss": float(loss.mean()), f"{prefix}/examples": float(len(loss))}, result)


def class_names(config: ml_collections.ConfigDict) -> list[str]:
    """The label names of the dataset's ``label_key`` (numbers if it has none)."""
    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir or None)
    names = getattr(builder.info.features[config.data.label_key], "names", None)
    return list(names) if names else [str(i) for i in range(config.num_classes)]


def _picture(result, config, split, path) -> None:
    """Confusion heat map of ``split`` (single-label, at most ``MAX_PICTURE_CLASSES`` classes)."""
    if result["label"].ndim != 1 or config.num_classes > MAX_PICTURE_CLASSES:
        return
    names = class_names(config)
    confusion = zeroshot.confusion_matrix(result["label"], result["out"][:, 3].astype(np.int32),
                                          len(names))
    figures.confusion_matrix_png(confusion, names, path.replace(".png", f"_{split}.png"),
                                 title=f"classifier on {split}: true class (rows) vs predicted")


class Evaluator(base.Evaluator):
    """Every split of ``config.evaluation.splits``, then the linear probe if configured.
    ``predict(params, images, labels)`` is the task's jitted ``eval_step`` and
    ``features(params, images)`` its pooled features."""

    def __init__(self, predict: Callable, features: Callable, config: ml_collections.ConfigDict):
        self.predict, self.features, self.config = predict, features, config

    def evaluate(self, params, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        metrics = {}
        for split in self.config.evaluation.splits:
            values, result = split_metrics(self.predict, params, self.config, split, mesh)
            metrics.update(values)
            if picture_path and jax.process_index() == 0:
                _picture(result, self.config, split, picture_path)
        probe = self.config.evaluation.get("linear_probe")
        if probe and (probe.get("methods") or probe.get("shots")):
            metrics.update(linear_probe.evaluate(self.features, params, self.config.data, probe,
                                                 mesh))
        return metrics
