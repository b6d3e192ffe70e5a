"""The linear-probe evaluator: ridge matches the normal equations, logistic regression and
ridge separate separable classes, few-shot sampling, l2 chosen on train data only, and the
whole evaluator on the built-in dataset with a features function of raw pixels."""

import jax
import ml_collections
import numpy as np
import pytest

from multimodal_jax.data import datasets
from multimodal_jax.evaluation import linear_probe
from multimodal_jax.parallel import mesh as mesh_lib


def _clusters(n_per_class=40, classes=4, dim=6, noise=0.3, seed=0):
    """Gaussian clusters around fixed centres; ``seed`` draws other points around the same centres."""
    centres = np.random.default_rng(123).normal(size=(classes, dim)) * 3
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class).astype(np.int32)
    x = (centres[y] + noise * rng.normal(size=(len(y), dim))).astype(np.float32)
    return x, y


def test_ridge_matches_normal_equations():
    x, y = _clusters()
    targets = np.eye(4, dtype=np.float32)[y]
    l2 = 0.5
    w, b = linear_probe.ridge_fit(x, targets, np.asarray([l2], np.float32))
    xc, yc = x - x.mean(0), targets - targets.mean(0)
    expected = np.linalg.solve(xc.T @ xc / len(x) + l2 * np.eye(x.shape[1]), xc.T @ yc / len(x))
    np.testing.assert_allclose(w[0], expected, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(b[0], targets.mean(0) - x.mean(0) @ expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("method", linear_probe.METHODS)
def test_probe_separates_clusters_with_l2_chosen_on_validation(method):
    x, y = _clusters()
    xv, yv = _clusters(n_per_class=10, seed=1)
    grid = (1e3, 1e-3)
    w, b, l2 = linear_probe.fit_probe(method, x, y, xv, yv, 4, grid, steps=50)
    assert linear_probe.accuracy(xv, yv, w, b)[0] == 1.0
    fits = (linear_probe.ridge_fit(x, np.eye(4, dtype=np.float32)[y], np.float32(grid))
            if method == "ridge" else linear_probe.logistic_fit(x, y, np.float32(grid), 4, 50))
    assert l2 == grid[int(np.argmax(linear_probe.accuracy(xv, yv, *fits)))]


def test_few_shot_indices():
    y = np.array([0, 1, 1, 2, 2, 2, 0, 1], np.int32)
    idx = linear_probe.few_shot_indices(y, 2, seed=3)
    counts = np.bincount(y[idx], minlength=3)
    np.testing.assert_array_equal(counts, [2, 2, 2])
    assert len(set(idx)) == len(idx)


def test_probe_metrics_names_and_unknown_fields():
    x, y = _clusters(n_per_class=30)
    xt, yt = _clusters(n_per_class=10, seed=2)
    cfg = linear_probe.default_config(methods=("ridge",), shots=(2,))
    metrics = linear_probe.probe_metrics((x, y), {"test": (xt, yt)}, cfg)
    assert metrics["probe/test/ridge_top1"] == 1.0
    assert 0.5 < metrics["fewshot/test/2shot_top1"] <= 1.0
    with pytest.raises(ValueError, match="Unknown linear_probe fields"):
        linear_probe.default_config(method="ridge")


def test_evaluate_on_builtin_dataset_from_pixels(shapes_data_dir):
    """Colour is linear in the pixels, the shape much less: the pixel probe lies between chance
    (1/56) and perfect; the evaluator runs the real pipeline and the mesh end to end."""
    data = datasets.default_data_config(name="captioned_shapes/tiny", data_dir=shapes_data_dir,
                                        label_key="label", image_size=16, mean=(0.5,) * 3,
                                        std=(0.5,) * 3)
    features = jax.jit(lambda p, x: x.reshape(x.shape[0], -1) * p)
    cfg = ml_collections.ConfigDict(dict(methods=("ridge",), train_examples=300, batch_size=64,
                                         filter=("num_objects", 1)))
    metrics = linear_probe.evaluate(features, np.float32(1.0), data, cfg, mesh_lib.data_mesh())
    assert 0.05 < metrics["probe/test/ridge_top1"] < 1.0
