"""The built-in captioned_shapes dataset: determinism, splits, captions, rendering."""

import importlib
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from multimodal_jax.data import shapes_builder as B
from multimodal_jax.data import shapes_captions as C
from multimodal_jax.data import shapes_render as R

CONFIGS = {c.name: c for c in B.CaptionedShapes.BUILDER_CONFIGS}


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def tiny_builder(tiny_dir):
    return B.prepare_shapes("tiny", tiny_dir)


@pytest.fixture(scope="module")
def tiny(tiny_builder):
    return {split: _examples(tiny_builder, split) for split in B.SPLITS}


def test_prepare_is_deterministic(tiny, tmp_path):
    other = B.prepare_shapes("tiny", tmp_path)
    for split in B.SPLITS:
        again = _examples(other, split)
        assert len(again) == len(tiny[split]) == CONFIGS["tiny"].num_examples(split)
        for a, b in zip(tiny[split], again):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split}/{key}")


def test_examples_follow_the_generator(tiny):
    # File order is index order, and each example is generate_example(config, split, index).
    for split in B.SPLITS:
        for index in (0, 7):
            expected = B.generate_example(CONFIGS["tiny"], split, index)
            got = tiny[split][index]
            np.testing.assert_array_equal(got["image"], expected["image"])
            assert got["caption"].decode() == expected["caption"]
            assert got["label"] == expected["label"]


def test_features_shapes_and_dtypes(tiny_builder, tiny):
    features = tiny_builder.info.features
    assert features["label"].names == list(B.CLASS_NAMES)
    assert features["shape"].names == list(B.SHAPES)
    assert features["color"].names == list(B.COLORS)
    assert features["size"].names == ["small", "large"]
    assert tiny_builder.info.supervised_keys == ("image", "label")
    for split in B.SPLITS:
        for ex in tiny[split]:
            assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
            assert isinstance(ex["caption"], bytes) and ex["caption"]
            assert ex["num_objects"] in (1, 2) and ex["num_objects"].dtype == np.int32
    pairs = np.mean([ex["num_objects"] == 2 for ex in tiny["train"]])
    assert 0.2 < pairs < 0.4


def test_other_configs_render_their_images():
    big = B.generate_example(CONFIGS["64px"], "train", 3)["image"]
    assert big.shape == (64, 64, 3) and big.dtype == np.uint8
    plain = B.generate_example(CONFIGS["32px"], "train", 3)["image"]
    textured = B.generate_example(CONFIGS["32px_textured"], "train", 3)["image"]

    def corner(img):
        return img[:4, :4].reshape(-1, 3).astype(np.float32)

    assert corner(plain).std() == 0  # flat background
    assert corner(textured).std() > 1  # noise/stripes
    assert textured.mean() < 120  # still low contrast: a dark background


def test_heldout_pairs_never_in_train_or_test(tiny):
    heldout = set(B.HELDOUT_PAIRS)
    assert len(heldout) == 8
    assert {s for s, _ in heldout} == set(B.SHAPES) and {c for _, c in heldout} == set(B.COLORS)
    for split in ("train", "test"):
        for ex in tiny[split]:
            assert (B.SHAPES[ex["shape"]], B.COLORS[ex["color"]]) not in heldout
            if ex["num_objects"] == 2:
                assert (B.SHAPES[ex["shape2"]], B.COLORS[ex["color2"]]) not in heldout
    for ex in tiny["heldout"]:
        assert (B.SHAPES[ex["shape"]], B.COLORS[ex["color"]]) in heldout
    # The generator, not just the tiny sample: many train indices.
    for index in range(3000):
        ex = B.generate_example(CONFIGS["32px"], "train", index)  # names, not ids, for object 1
        assert (ex["shape"], ex["color"]) not in heldout
        if ex["num_objects"] == 2:
            assert (B.SHAPES[ex["shape2"]], B.COLORS[ex["color2"]]) not in heldout


def test_labels_agree_with_captions(tiny):
    for split in B.SPLITS:
        for ex in tiny[split]:
            shape, color = B.SHAPES[ex["shape"]], B.COLORS[ex["color"]]
            assert ex["label"] == B.SHAPES.index(shape) * len(B.COLORS) + B.COLORS.index(color)
            assert B.CLASS_NAMES[ex["label"]] == f"{color} {shape}"
            mentioned = C.parse_objects(ex["caption"].decode())
            assert mentioned[0] == (shape, color), ex["caption"]
            if ex["num_objects"] == 1:
                assert len(mentioned) == 1 and ex["label2"] == -1 and ex["relation"] == 0
            else:
                second = (B.SHAPES[ex["shape2"]], B.COLORS[ex["color2"]])
                assert mentioned == [(shape, color), second], ex["caption"]
                assert ex["label2"] == C.class_label(*second)
                assert B.RELATIONS[ex["relation"]] != "none"


def test_captions_use_a_small_vocabulary(tiny):
    vocabulary = set(C.vocabulary())
    assert len(vocabulary) < 300
    captions = {ex["caption"].decode() for split in B.SPLITS for ex in tiny[split]}
    assert len(captions) > 0.5 * sum(len(v) for v in tiny.values())  # varied, not one per class
    for caption in captions:
        assert set(caption.replace(",", " ").replace(".", " ").split()) <= vocabulary, caption


def test_zeroshot_prompts_are_in_distribution(tiny):
    vocabulary = set(C.vocabulary())
    assert len(B.CLASS_NAMES) == len(B.SHAPES) * len(B.COLORS) == 64
    assert "a photo of a {}." in B.ZEROSHOT_TEMPLATES
    for template, name in itertools.product(B.ZEROSHOT_TEMPLATES, B.CLASS_NAMES):
        assert set(template.format(name).rstrip(".").split()) <= vocabulary
    captions = [ex["caption"].decode() for ex in tiny["train"]]
    assert any(c.startswith("a photo of a ") for c in captions)
    assert any(c in (f"a photo of a {n}." for n in B.CLASS_NAMES) for c in captions)


def test_swapping_words_changes_caption_and_image():
    def scene(first, second):
        rng = np.random.default_rng(5)
        caption = C.pair_caption(rng, first, second, "left of")
        c1, c2 = R.pair_centers(rng, 32, 6.4, "left of")
        image = R.render_scene(R.plain_background(rng, 32), [
            dict(shape=first[0], rgb=np.array(R.COLOR_RGB[first[1]], np.float32),
                 center=c1, radius=6.4),
            dict(shape=second[0], rgb=np.array(R.COLOR_RGB[second[1]], np.float32),
                 center=c2, radius=6.4)])
        return caption, image

    caption_a, image_a = scene(("circle", "red"), ("square", "blue"))
    caption_b, image_b = scene(("circle", "blue"), ("square", "red"))
    assert caption_a != caption_b
    assert C.parse_objects(caption_a) == [("circle", "red"), ("square", "blue")]
    assert C.parse_objects(caption_b) == [("circle", "blue"), ("square", "red")]
    assert np.abs(image_a.astype(int) - image_b.astype(int)).sum() > 0


@pytest.mark.parametrize("size", [32, 64])
def test_pair_layout_matches_relation_without_overlap(size):
    rng = np.random.default_rng(0)
    radius = R.SIZE_RADIUS["small"] * size
    for relation in R.RELATIONS[1:]:
        for _ in range(50):
            (x1, y1), (x2, y2) = R.pair_centers(rng, size, radius, relation)
            assert {"left of": x1 < x2, "right of": x1 > x2,
                    "above": y1 < y2, "below": y1 > y2}[relation]
            assert np.hypot(x1 - x2, y1 - y2) > 2 * radius
            for v in (x1, y1, x2, y2):
                assert radius <= v <= size - radius


@pytest.mark.parametrize("size", [32, 64])
def test_single_objects_stay_inside(size):
    rng = np.random.default_rng(0)
    for name, position in itertools.product(R.SIZES, R.POSITIONS):
        radius = R.SIZE_RADIUS[name] * size
        for _ in range(20):
            x, y = R.single_center(rng, size, radius, position)
            assert radius <= x <= size - radius and radius <= y <= size - radius


def test_small_shapes_are_distinguishable_at_32px():
    size, radius = 32, R.SIZE_RADIUS["small"] * 32
    assert 6 <= radius <= 7
    masks = {}
    for shape in R.SHAPES:
        img = R.render_scene(np.zeros((size, size, 3), np.float32), [dict(
            shape=shape, rgb=np.full(3, 255.0, np.float32), center=(16, 16), radius=radius)])
        masks[shape] = img[..., 0] > 127
        assert masks[shape].sum() > 25, shape  # visible
    for a, b in itertools.combinations(R.SHAPES, 2):
        assert (masks[a] != masks[b]).sum() >= 10, (a, b)


def test_colors_are_distinct():
    rgb = np.array([R.COLOR_RGB[c] for c in R.COLORS], np.float32)
    for i, j in itertools.combinations(range(len(rgb)), 2):
        assert np.abs(rgb[i] - rgb[j]).max() > 80, (R.COLORS[i], R.COLORS[j])


def test_builder_is_registered_and_reimport_is_harmless(tiny_builder, tiny_dir):
    importlib.reload(B)  # a second registration of the class name must not raise
    builder = tfds.builder("captioned_shapes/tiny", data_dir=tiny_dir)
    assert builder.is_prepared()
    assert builder.info.splits["heldout"].num_examples == 128


def test_unknown_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="32px_textured"):
        B.prepare_shapes("16px", tmp_path)
