"""Generative metrics against references: Frechet distance vs a float64 scipy computation,
KID about 0 on one distribution, k-NN precision / recall, CLIP score, attribute accuracy,
and the sample grid PNG."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from multimodal_jax.data import shapes_builder
from multimodal_jax.evaluation import attributes
from multimodal_jax.evaluation import gan_eval
from multimodal_jax.evaluation import generative
from multimodal_jax.evaluation import line_plot
from multimodal_jax.evaluation import sample_grid


def _features(n, dim, seed, shift=0.0):
    """Correlated Gaussian features (a random linear map of white noise), optionally shifted."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(123).normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing + shift


def _scipy_frechet(a, b):
    """The textbook formula with scipy's general matrix square root, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_frechet_distance_equals_scipy_float64_reference(shift):
    a = _features(500, 16, seed=0)
    b = _features(400, 16, seed=1, shift=shift) * 1.3
    np.testing.assert_allclose(generative.frechet_distance(a, b), _scipy_frechet(a, b), rtol=1e-7)
    np.testing.assert_allclose(generative.frechet_distance(a.astype(np.float32), b),
                               _scipy_frechet(a, b), rtol=1e-5)


def test_frechet_distance_of_a_sample_with_itself_is_zero():
    a = _features(300, 8, seed=2)
    assert abs(generative.frechet_distance(a, a)) < 1e-8


def test_kid_is_about_zero_on_one_distribution_and_positive_between_two():
    a, b = _features(600, 16, seed=3), _features(600, 16, seed=4)
    same, same_std = generative.kid(a, b, subsets=20, subset_size=300)
    assert abs(same) < max(3 * same_std, 1e-3)
    shifted, shifted_std = generative.kid(a, _features(600, 16, seed=4, shift=0.5),
                                          subsets=20, subset_size=300)
    assert shifted > 10 * max(abs(same), shifted_std)


def test_mmd_unbiased_matches_a_direct_double_sum():
    x, y = _features(7, 3, seed=5), _features(6, 3, seed=6, shift=1.0)
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(6)) / (7 * 6)
    np.testing.assert_allclose(generative.mmd2_unbiased(x, y), xx + yy - 2 * xy, rtol=1e-10)


def test_precision_recall_same_distribution_high_disjoint_zero_and_mode_dropping():
    real = _features(400, 4, seed=7)
    precision, recall = generative.precision_recall(real, _features(400, 4, seed=8), k=3)
    assert precision > 0.8 and recall > 0.8
    far = generative.precision_recall(real, _features(400, 4, seed=8, shift=100.0), k=3)
    assert far == (0.0, 0.0)
    # Generated samples that cover only part of the real data: precise, but low recall.
    collapsed = real[np.argsort(real[:, 0])[:100]] + 1e-3
    precision, recall = generative.precision_recall(real, collapsed, k=3)
    assert precision > 0.9 and recall < 0.5


def test_clip_score_is_the_mean_cosine():
    image = np.array([[1.0, 0.0], [0.0, 2.0]])
    text = np.array([[3.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(generative.clip_score(image, text), (1 + 1 / np.sqrt(2)) / 2)


def test_attribute_accuracy_splits_builtin_labels_into_shape_and_colour():
    labels = np.array([0 * 8 + 1, 2 * 8 + 3, 5 * 8 + 7, 1 * 8 + 0])  # shape * 8 + colour
    predicted = np.array([0 * 8 + 1, 2 * 8 + 4, 6 * 8 + 7, 3 * 8 + 2])
    acc = attributes.attribute_accuracy(predicted, labels, split_attributes=True)
    assert acc == {"label": 0.25, "shape": 0.5, "color": 0.5}
    assert attributes.attribute_accuracy(predicted, labels, False) == {"label": 0.25}


def test_sample_grid_png_has_one_cell_per_image(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (10, 16, 16, 3), dtype=np.uint8)
    path = str(tmp_path / "grid.png")
    sample_grid.write(images, [f"a caption number {i} that wraps" for i in range(10)], path,
                      columns=4, cell=32)
    grid = Image.open(path)
    assert grid.width == 4 + 4 * 36 and grid.height > 3 * 32
    assert np.asarray(grid).std() > 0


def test_line_plot_draws_each_series_in_its_colour_and_refuses_ragged_input(tmp_path):
    path = str(tmp_path / "plot.png")
    line_plot.write([0.5, 0.75, 1.0], {"precision": [0.9, 0.8, 0.6], "recall": [0.1, 0.3, 0.5]},
                    path, x_label="psi", title="trade-off")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    for colour in line_plot.COLOURS[:2]:
        assert (pixels == colour).all(axis=1).sum() > 50, colour
    assert not (pixels == line_plot.COLOURS[2]).all(axis=1).any()  # no third series
    with pytest.raises(ValueError, match="2 values for 3 x positions"):
        line_plot.write([0.5, 0.75, 1.0], {"recall": [0.1, 0.3]}, path, x_label="psi")


def test_grid_row_of_heldout_captions_shows_each_label_before_any_repeat():
    batch = {"label": np.array([5, 5, 7, 5, 9, 7, 3]), "mask": np.array([1, 1, 1, 1, 1, 1, 0])}
    assert gan_eval._one_per_label(batch, 4) == [0, 2, 4, 1]  # 3 is padding (mask 0)
    assert gan_eval._one_per_label(batch, 10) == [0, 2, 4, 1, 3, 5]


def test_object_crops_hold_object_one_then_object_two():
    """On the built-in dataset's two-object scenes (every relation), the first crop of
    ``object_crops`` holds all of object 1 and none of object 2, the second the reverse."""
    config = shapes_builder.ShapesConfig(name="t", image_size=32)
    scenes = [e for e in (shapes_builder.generate_example(config, "test", i, masks=True)
                          for i in range(80)) if e["num_objects"] == 2]
    assert len(scenes) >= 12 and {e["relation"] for e in scenes} == set(gan_eval.SIDE_OF_FIRST)
    masks = np.stack([e["masks"] for e in scenes]).astype(np.float32)  # [N, 2, H, W]
    side = np.array([gan_eval.SIDE_OF_FIRST[e["relation"]] for e in scenes], np.int32)
    pixels = np.stack([masks[:, 0], masks[:, 1], np.zeros_like(masks[:, 0])], axis=-1)
    first, second = (np.asarray(c) for c in gan_eval.object_crops(jnp.asarray(pixels), jnp.asarray(side)))
    sums = lambda x, c: x[..., c].sum(axis=(1, 2))  # noqa: E731
    assert (sums(first, 0) >= masks[:, 0].sum(axis=(1, 2))).all()
    assert (sums(second, 1) >= masks[:, 1].sum(axis=(1, 2))).all()
    assert not sums(first, 1).any() and not sums(second, 0).any()
