"""TFDS builder ``captioned_shapes``: procedurally rendered, captioned coloured shapes.

Offline and deterministic: example ``i`` of split ``s`` is drawn from
np.random.default_rng([config.seed, split_id(s), i]); nothing is downloaded. Importing
this module registers the builder (a second import or reload does not re-register).

    builder = prepare_shapes("tiny", data_dir)      # or "32px", "64px", "32px_textured"
    ds = builder.as_dataset(split="train")

``32px_multilingual`` (and ``tiny_multilingual``) draw the same images as ``32px`` (``tiny``)
and add ``captions``, one caption per language of ``config.languages`` (translations of one
another; ``shapes_multilingual``), and their shared meaning ``gloss``; ``caption`` is the first
language's. Its train split withholds ``XFER_PAIRS`` from the ``xfer_language``'s captions.
"""

import dataclasses
import io
import os
from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from multimodal_jax.data import shapes_multilingual as multilingual
from multimodal_jax.data import shapes_render as render
from multimodal_jax.data.shapes_captions import CLASS_NAMES
from multimodal_jax.data.shapes_captions import ZEROSHOT_TEMPLATES
from multimodal_jax.data.shapes_captions import class_label
from multimodal_jax.data.shapes_captions import pair_caption
from multimodal_jax.data.shapes_captions import single_caption
from multimodal_jax.data.shapes_languages import CODES
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import POSITIONS
from multimodal_jax.data.shapes_render import RELATIONS
from multimodal_jax.data.shapes_render import SHAPES
from multimodal_jax.data.shapes_render import SIZES

__all__ = [
    "SHAPES", "COLORS", "SIZES", "POSITIONS", "RELATIONS", "CLASS_NAMES", "ZEROSHOT_TEMPLATES",
    "HELDOUT_PAIRS", "TRAIN_PAIRS", "XFER_PAIRS", "SPLITS", "ShapesConfig", "CaptionedShapes",
    "generate_example", "prepare_shapes",
]

NAME = "captioned_shapes"
# (shape, colour) pairs never drawn in train/test; each shape and each colour once.
HELDOUT_PAIRS: Tuple[Tuple[str, str], ...] = (
    ("circle", "orange"), ("square", "cyan"), ("triangle", "white"), ("diamond", "red"),
    ("star", "blue"), ("cross", "yellow"), ("ring", "magenta"), ("crescent", "green"),
)
TRAIN_PAIRS: Tuple[Tuple[str, str], ...] = tuple(
    (s, c) for s in SHAPES for c in COLORS if (s, c) not in HELDOUT_PAIRS)
# Pairs the transfer language's training captions never name (multilingual configs): half of
# TRAIN_PAIRS, each shape with about half of its colours.
XFER_PAIRS = multilingual.checkerboard_pairs(excluded=HELDOUT_PAIRS)
SPLITS = ("train", "test", "heldout")  # the split id is the index here
PAIR_FRACTION = 0.3  # share of two-object images
MAX_ANGLE = 0.15  # radians of random rotation, small so a square never becomes a diamond
_RELATION_POSITION = {"left of": "left", "right of": "right", "above": "top", "below": "bottom"}


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
    """Image side, background style, split sizes and seed of one dataset variant; caption
    languages (none: the English ``caption`` alone) and the transfer language."""

    image_size: int = 32
    textured: bool = False
    num_train: int = 50_000
    num_test: int = 2_000
    num_heldout: int = 2_000
    seed: int = 0
    languages: Tuple[str, ...] = ()
    xfer_language: str = ""

    def num_examples(self, split: str) -> int:
        return {"train": self.num_train, "test": self.num_test,
                "heldout": self.num_heldout}[split]


def _choose(rng: np.random.Generator, options):
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _sample_scene(rng: np.random.Generator, split: str) -> Dict:
    """Attributes of one image: object 1 (+ object 2 and their relation)."""
    first = _choose(rng, HELDOUT_PAIRS if split == "heldout" else TRAIN_PAIRS)
    if rng.random() >= PAIR_FRACTION:
        return {"first": first, "second": None, "relation": "none",
                "size": _choose(rng, SIZES), "position": _choose(rng, POSITIONS)}
    second = first
    while second == first:
        second = _choose(rng, TRAIN_PAIRS)
    relation = _choose(rng, RELATIONS[1:])
    return {"first": first, "second": second, "relation": relation, "size": "small",
            "position": _RELATION_POSITION[relation]}


def _render(rng: np.random.Generator, scene: Dict, size: int, textured: bool):
    """Draws a scene into a uint8 [size, size, 3] image; with the objects drawn (dicts)."""
    background = (render.textured_background if textured else render.plain_background)(rng, size)
    radius = render.SIZE_RADIUS[scene["size"]] * size
    if scene["second"] is None:
        centers = [render.single_center(rng, size, radius, scene["position"])]
        objects = [scene["first"]]
    else:
        centers = list(render.pair_centers(rng, size, radius, scene["relation"]))
        objects = [scene["first"], scene["second"]]
    drawn = [dict(shape=shape, rgb=render.object_rgb(rng, color), center=center,
                  radius=radius, angle=rng.uniform(-MAX_ANGLE, MAX_ANGLE))
             for (shape, color), center in zip(objects, centers)]
    return render.render_scene(background, drawn), drawn


def generate_example(config: ShapesConfig, split: str, index: int, masks: bool = False) -> Dict:
    """Example ``index`` of ``split`` as a dict of numpy/str features (image uint8 array). With
    ``masks``, also ``"masks"``: bool [num_objects, size, size], where each object shows
    (``render.object_masks``; not a dataset feature, the same example otherwise)."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    scene = _sample_scene(rng, split)
    image, drawn = _render(rng, scene, config.image_size, config.textured)
    (shape, color), second = scene["first"], scene["second"]
    texts = {}
    if config.languages:
        texts = _multilingual_captions(rng, config, split, index, scene)
        caption = texts["captions"][0]
    elif second is None:
        caption = single_caption(rng, shape, color, scene["size"], scene["position"])
    else:
        caption = pair_caption(rng, scene["first"], second, scene["relation"])
    if second is None:
        shape2 = color2 = label2 = -1
    else:
        shape2, color2 = SHAPES.index(second[0]), COLORS.index(second[1])
        label2 = class_label(*second)
    extra = {"masks": render.object_masks(config.image_size, drawn)} if masks else {}
    return {
        **texts, **extra, "image": image, "caption": caption, "label": class_label(shape, color),
        "shape": shape, "color": color, "size": scene["size"], "position": scene["position"],
        "num_objects": np.int32(1 if second is None else 2), "relation": scene["relation"],
        "shape2": np.int32(shape2), "color2": np.int32(color2), "label2": np.int32(label2),
    }


def _multilingual_captions(rng: np.random.Generator, config: ShapesConfig, split: str,
                           index: int, scene: Dict) -> Dict:
    """{"captions": one per language of the config, "gloss": their meaning}."""
    content = multilingual.sample_content(rng, scene)
    withheld = multilingual.withheld_languages(split, content, config.xfer_language, XFER_PAIRS)
    seed = (config.seed, SPLITS.index(split), index)
    return {"captions": list(multilingual.captions(seed, config.languages, content, withheld)),
            "gloss": content.gloss()}


def _png(image: np.ndarray) -> bytes:
    """PNG bytes via PIL (several times faster than TFDS's per-image TF graph)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _already_registered(name: str) -> bool:
    """True if a builder ``name`` exists (e.g. this module imported twice or reloaded)."""
    # TFDS registers by class name and raises on a second registration.
    return name in getattr(tfds.core.registered, "_DATASET_REGISTRY", {})


class CaptionedShapes(tfds.core.GeneratorBasedBuilder,
                      skip_registration=_already_registered(NAME)):
    """Captioned coloured shapes; see the module docstring."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="32px", description="32x32 images on a plain dark background."),
        ShapesConfig(name="64px", image_size=64, description="64x64 images."),
        ShapesConfig(name="32px_textured", textured=True,
                     description="32x32 images on a low-contrast striped, noisy background."),
        ShapesConfig(name="tiny", num_train=512, num_test=128, num_heldout=128,
                     description="32x32, few examples: for tests."),
        ShapesConfig(name="32px_multilingual", languages=CODES, xfer_language="zh",
                     description="The 32px images with parallel captions in "
                                 f"{', '.join(CODES)}; zh never names XFER_PAIRS in train."),
        ShapesConfig(name="tiny_multilingual", num_train=512, num_test=128, num_heldout=128,
                     languages=CODES, xfer_language="zh",
                     description="tiny with the multilingual captions: for tests."),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "32px"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> tfds.core.Path:
        """This file. TFDS's own lookup needs the ``importlib_resources`` package."""
        return tfds.core.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size

        def index():
            return tfds.features.Scalar(np.int32, doc="object 2; -1 if there is none")

        languages = self.builder_config.languages
        multilingual_features = {
            "captions": tfds.features.Sequence(
                tfds.features.Text(), length=len(languages),
                doc=f"one caption per language, in the order {list(languages)}; '' where the "
                    "language withholds the example"),
            "gloss": tfds.features.Text(doc="what every caption of the example says"),
        } if languages else {}
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                **multilingual_features,
                "image": tfds.features.Image(shape=(size, size, 3), dtype=np.uint8),
                "caption": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                "shape": tfds.features.ClassLabel(names=SHAPES),
                "color": tfds.features.ClassLabel(names=COLORS),
                "size": tfds.features.ClassLabel(names=SIZES),
                "position": tfds.features.ClassLabel(names=POSITIONS),
                "num_objects": tfds.features.Scalar(np.int32),
                "relation": tfds.features.ClassLabel(names=RELATIONS),
                "shape2": index(),
                "color2": index(),
                "label2": index(),
            }),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # examples are i.i.d. already; keeps index order
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        for index in range(config.num_examples(split)):
            example = generate_example(config, split, index)
            example["image"] = _png(example["image"])
            yield index, example


def prepare_shapes(config_name: str = "32px",
                   data_dir: Optional[str] = None) -> CaptionedShapes:
    """Returns the ``captioned_shapes/<config_name>`` builder, generating it first if needed."""
    names = [c.name for c in CaptionedShapes.BUILDER_CONFIGS]
    if config_name not in names:
        raise ValueError(f"Unknown captioned_shapes config {config_name!r}; "
                         f"choose one of {names}.")
    if data_dir is not None:
        data_dir = os.fspath(data_dir)
    builder = CaptionedShapes(config=config_name, data_dir=data_dir, file_format="tfrecord")
    builder.download_and_prepare()
    return builder
