"""Linear probe and few-shot evaluation on frozen image features of any checkpoint with an
image tower: closed-form ridge regression to one-hot targets, or multinomial logistic
regression (full-batch L-BFGS), both jitted.

The regularisation strength is chosen on a validation slice carved from the *train* split
(never on the test split), then the probe is refitted on all its train examples.
Features are standardised with train statistics first.
"""

import functools
import itertools
import math
from typing import Callable
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from multimodal_jax.data import pipeline
from multimodal_jax.evaluation import encode

HIGHEST = jax.lax.Precision.HIGHEST
L2_GRID = tuple(10.0 ** e for e in range(-6, 3))
METHODS = ("ridge", "logistic")


def default_config(**overrides) -> ml_collections.ConfigDict:
    """The ``evaluation.linear_probe`` fields and their defaults."""
    defaults = dict(
        train_split="train", test_splits=("test",), filter=(), train_examples=10_000,
        val_fraction=0.2, methods=("ridge",), shots=(), l2_grid=L2_GRID, logistic_steps=200,
        batch_size=256, seed=0)
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"Unknown linear_probe fields {unknown}; known: {sorted(defaults)}.")
    return ml_collections.ConfigDict({**defaults, **overrides})


def extract(features_fn: Callable, params, data_cfg, split: str, batch_size: int, mesh,
            filter=None, limit: int | None = None):  # noqa: A002 - the pipeline's name
    """Frozen features ``[N, D]`` (float32) and labels ``[N]`` of ``split`` (the first ``limit``)."""
    batches = pipeline.make_eval_iterator(data_cfg, split, None, batch_size, filter=filter or None)
    if limit:
        batches = itertools.islice(batches, math.ceil(limit / batch_size))
    result = encode.map_dataset(features_fn, params, batches, mesh, ("image",), ("label",))
    x, y = result["out"][:limit], result["label"][:limit]
    if y.ndim != 1:
        raise ValueError("The linear probe needs one integer label per image (data.label_key "
                         "without data.extra_label_keys).")
    return np.asarray(x, np.float32).reshape(len(x), -1), np.asarray(y, np.int32)


def standardise(train, *others):
    """Features minus the train mean, over the train standard deviation."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    return [(x - mean) / std for x in (train,) + others]


@jax.jit
def ridge_fit(x, targets, l2_grid):
    """Ridge weights ``[G, D, C]`` and biases ``[G, C]`` for every strength in ``l2_grid``
    (one eigendecomposition of ``X^T X / N`` serves them all)."""
    n = x.shape[0]
    mean_x, mean_y = x.mean(0), targets.mean(0)
    xc = x - mean_x
    evals, evecs = jnp.linalg.eigh(jnp.matmul(xc.T, xc, precision=HIGHEST) / n)
    xty = jnp.matmul(evecs.T, jnp.matmul(xc.T, targets - mean_y, precision=HIGHEST) / n,
                     precision=HIGHEST)
    weights = jax.vmap(lambda l2: jnp.matmul(evecs, xty / (evals + l2)[:, None],
                                             precision=HIGHEST))(l2_grid)
    return weights, mean_y[None] - jnp.einsum("d,gdc->gc", mean_x, weights, precision=HIGHEST)


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def logistic_fit(x, labels, l2_grid, num_classes: int, steps: int = 200):
    """Multinomial logistic regression with an L2 penalty, ``steps`` of L-BFGS per strength:
    weights ``[G, D, C]`` and biases ``[G, C]``."""
    targets = jax.nn.one_hot(labels, num_classes)

    def fit(l2):
        def loss(p):
            logits = jnp.matmul(x, p["w"], precision=HIGHEST) + p["b"]
            return jnp.mean(optax.softmax_cross_entropy(logits, targets)) + l2 * jnp.sum(p["w"] ** 2) / 2

        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(_, carry):
            p, state = carry
            value, grad = value_and_grad(p, state=state)
            updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
            return optax.apply_updates(p, updates), state

        p = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
        p, _ = jax.lax.fori_loop(0, steps, step, (p, opt.init(p)))
        return p["w"], p["b"]

    return jax.vmap(fit)(l2_grid)


def accuracy(x, labels, weights, bias) -> np.ndarray:
    """Top-1 accuracy of every probe in a grid: ``[G]``."""
    logits = jnp.einsum("nd,gdc->gnc", x, weights, precision=HIGHEST) + bias[:, None]
    return np.asarray(jnp.mean(jnp.argmax(logits, -1) == labels[None], axis=1))


def fit_probe(method: str, x_train, y_train, x_val, y_val, num_classes: int,
              l2_grid: Sequence[float], steps: int = 200):
    """The probe fitted on train+val with the strength best on val: ``(weights, bias, l2)``."""
    grid = jnp.asarray(l2_grid, jnp.float32)

    def fit(x, y, g):
        if method == "ridge":
            return ridge_fit(x, jax.nn.one_hot(y, num_classes), g)
        if method == "logistic":
            return logistic_fit(x, y, g, num_classes, steps)
        raise ValueError(f"Unknown linear probe method {method!r}; choose one of {METHODS}.")

    best = float(list(l2_grid)[int(np.argmax(accuracy(x_val, y_val, *fit(x_train, y_train, grid))))])
    weights, bias = fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]),
                        jnp.asarray([best], jnp.float32))
    return weights, bias, best


def few_shot_indices(labels, shots: int, seed: int = 0) -> np.ndarray:
    """Indices of ``shots`` examples of every class present (fewer where a class has fewer),
    drawn without replacement with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(labels))
    picked = [order[labels[order] == c][:shots] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def probe_metrics(train, tests: dict, cfg: ml_collections.ConfigDict) -> dict[str, float]:
    """All probe and few-shot metrics from train features/labels and ``{split: (x, y)}``."""
    x, y = train
    num_classes = int(max([y.max()] + [t[1].max() for t in tests.values()])) + 1
    n_val = max(1, int(len(y) * cfg.val_fraction))
    order = np.random.default_rng(cfg.seed).permutation(len(y))
    val, fit = order[:n_val], order[n_val:]
    x_fit, x_val, *x_tests = standardise(x[fit], x[val], *[t[0] for t in tests.values()])
    metrics = {}
    for method in cfg.methods:
        w, b, l2 = fit_probe(method, x_fit, y[fit], x_val, y[val], num_classes, cfg.l2_grid,
                             cfg.logistic_steps)
        metrics[f"probe/{method}_l2"] = l2
        for split, xt in zip(tests, x_tests):
            metrics[f"probe/{split}/{method}_top1"] = float(accuracy(xt, tests[split][1], w, b)[0])
    for shots in cfg.shots:
        few = few_shot_indices(y[fit], shots, cfg.seed)
        w, b, _ = fit_probe("ridge", x_fit[few], y[fit][few], x_val, y[val], num_classes,
                            cfg.l2_grid)
        for split, xt in zip(tests, x_tests):
            metrics[f"fewshot/{split}/{shots}shot_top1"] = float(accuracy(xt, tests[split][1], w, b)[0])
    return metrics


def evaluate(features_fn: Callable, params, data_cfg, cfg: ml_collections.ConfigDict,
             mesh) -> dict[str, float]:
    """Linear probe (and few-shot) metrics of ``features_fn(params, images)`` on ``data_cfg``'s
    splits, e.g. ``probe/test/ridge_top1`` and ``fewshot/test/5shot_top1``."""
    cfg = default_config(**cfg.to_dict()) if hasattr(cfg, "to_dict") else default_config(**cfg)
    filt = tuple(cfg.filter) or None
    train = extract(features_fn, params, data_cfg, cfg.train_split, cfg.batch_size, mesh, filt,
                    cfg.train_examples)
    tests = {split: extract(features_fn, params, data_cfg, split, cfg.batch_size, mesh, filt)
             for split in cfg.test_splits}
    return probe_metrics(train, tests, cfg)
