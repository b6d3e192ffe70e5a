"""Generative metrics on features (numpy, float64): Frechet distance, KID, k-NN precision /
recall, CLIP score.

The features come from a contrastive image encoder that did not train the GAN, so the
metrics are named for that space (``fd_clip``, ``kid_clip``, ...): with no Inception weights
offline, none of them is FID, and their values are not comparable with published FIDs.
"""

import numpy as np


def _moments(features) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigh)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a, features_b) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` of two Gaussians fitted
    to ``[N, D]`` features. ``tr((S_a S_b)^(1/2)) = tr((R S_b R)^(1/2))`` with ``R = S_a^(1/2)``,
    a symmetric PSD matrix, so both roots come from ``eigh`` (no complex round-off)."""
    mu_a, cov_a = _moments(features_a)
    mu_b, cov_b = _moments(features_b)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _polynomial_kernel(x, y) -> np.ndarray:
    """KID's kernel ``(x . y / d + 1) ** 3``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    """The unbiased estimate of the squared MMD between samples ``x`` and ``y`` (``[m, D]``)."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) +
                 (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - 2 * k_xy.mean())


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """Kernel distance (Binkowski et al. 2018): the unbiased MMD^2 with a cubic polynomial
    kernel, averaged over ``subsets`` random subsets of ``subset_size`` per side (capped at
    the sample sizes). Returns ``(mean, standard deviation over subsets)``."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 examples per side, got {len(a)} and {len(b)}.")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                            b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def _squared_distances(x, y) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def _kth_neighbour_radii(x, k: int) -> np.ndarray:
    """Squared distance of each row of ``x`` to its k-th nearest other row."""
    d = _squared_distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the row itself (distance 0)


def _covered(queries, support, radii, chunk: int = 1024) -> np.ndarray:
    """Whether each query lies inside the k-NN ball of some support point."""
    out = []
    for i in range(0, len(queries), chunk):
        out.append(np.any(_squared_distances(queries[i:i + chunk], support) <= radii[None, :], axis=1))
    return np.concatenate(out)


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision = share of generated
    samples inside the real manifold (union of k-NN balls of real samples), recall = share of
    real samples inside the generated manifold."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} examples per side.")
    precision = _covered(fake, real, _kth_neighbour_radii(real, k)).mean()
    recall = _covered(real, fake, _kth_neighbour_radii(fake, k)).mean()
    return float(precision), float(recall)


def clip_score(image_emb, text_emb) -> float:
    """Mean cosine similarity of each image's embedding with its caption's."""
    a, b = np.asarray(image_emb, np.float64), np.asarray(text_emb, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean(np.sum(a * b, axis=1)))
