"""Attribute accuracy of generated images: a classifier trained on real images (a
classification run, ``config.prerequisites.classifier``) predicts each generated image's
class, and the share whose class - or, on the built-in dataset, whose shape and colour
(``label = shape * len(COLORS) + colour``) - matches its condition's is reported."""

import dataclasses

import jax.numpy as jnp
import ml_collections
import numpy as np

from multimodal_jax.data import datasets
from multimodal_jax.data import shapes_render
from multimodal_jax.models import factory
from multimodal_jax.pretrained import frozen_clip
from multimodal_jax.pretrained import init_from


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A ViT classifier and its image format; ``predict`` is pure and jit-able."""

    model: object
    image_size: int
    mean: tuple
    std: tuple

    def predict(self, params, images, mean, std):
        """Predicted class ids ``[B]`` of images in the ``(mean, std)`` normalisation."""
        images = frozen_clip.to_model_input(images, mean, std, self.mean, self.std, self.image_size)
        return jnp.argmax(self.model.apply({"params": params}, images)["logits"], axis=-1)


def load(config: ml_collections.ConfigDict, name: str):
    """``(Classifier, params)`` of prerequisite ``name`` (a classification run and its config;
    the config's prerequisites are resolved to paths by now)."""
    run = config.prerequisites[name].config
    model = factory.build_vit(run.model.image, run.model.dtype, num_classes=run.num_classes)
    spec = config.prerequisites[name].workdir
    classifier = Classifier(model, int(run.data.image_size), *datasets.normalisation(run.data))
    return classifier, init_from.restore_params(init_from.parse(spec)[1])


def builtin_attributes(labels) -> dict[str, np.ndarray]:
    """The built-in dataset's ``label`` -> ``{"shape": ..., "color": ...}`` indices."""
    labels = np.asarray(labels)
    colors = len(shapes_render.COLORS)
    return {"shape": labels // colors, "color": labels % colors}


def attribute_accuracy(predicted, labels, split_attributes: bool) -> dict[str, float]:
    """``{"label": share of exact class matches}`` and, with ``split_attributes`` (the
    built-in dataset), ``"shape"`` and ``"color"`` shares."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    out = {"label": float(np.mean(predicted == labels))}
    if split_attributes:
        got, want = builtin_attributes(predicted), builtin_attributes(labels)
        out.update({k: float(np.mean(got[k] == want[k])) for k in want})
    return out
