"""Zero-shot classification: class embeddings from prompt ensembles, then top-k and confusion.

A class is embedded as CLIP does it: every template filled with the class name is encoded,
the L2-normalised prompt embeddings are averaged and the mean is re-normalised. An image is
scored against all classes with one float32 matmul at HIGHEST precision, so results do not
depend on the backend's default (possibly bfloat16) matmul precision.

Tie rule (shared with retrieval.py): an example's rank is the number of *other* classes whose
score is >= the true class's score, and it counts for top-k iff rank < k. Ties therefore never
raise accuracy (constant embeddings give top1 = 0, not 1); a NaN score counts against, too.
``zeroshot_confusion`` predicts by argmax (first index on ties), so its diagonal can exceed
the top-1 count when scores tie exactly.
"""

import functools
from typing import Callable
from typing import Dict
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); a zero row stays zero instead of becoming NaN."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, np.finfo(np.float32).tiny)


def _prompts(class_names: Sequence[str], templates: Sequence[str]) -> list:
    """All prompts, class-major: [c0 t0, c0 t1, ..., c1 t0, ...]."""
    if not class_names or not templates:
        raise ValueError(
            f"class_embeddings needs at least one class name and one template; got "
            f"{len(class_names)} class names and {len(templates)} templates.")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(
            f"Every zero-shot template must contain '{{}}' where the class name goes; these "
            f"do not: {bad!r}. Write them like 'a photo of a {{}}.'.")
    return [t.format(name) for name in class_names for t in templates]


def encode_in_chunks(encode: Callable, tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """encode(tokens) over fixed-size chunks of rows; the last chunk is padded by repeating its
    first row (so every call sees exactly ``batch_size`` rows) and the padding is dropped."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    tokens = np.asarray(tokens)
    outputs = []
    for start in range(0, len(tokens), batch_size):
        chunk = tokens[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - n, axis=0)])
        out = np.asarray(jax.device_get(encode(chunk)), np.float32)
        if out.ndim != 2 or out.shape[0] != batch_size:
            raise ValueError(
                f"encode_text must map int tokens [{batch_size}, L] to embeddings "
                f"[{batch_size}, D]; it returned shape {out.shape}.")
        outputs.append(out[:n])
    return np.concatenate(outputs)


def class_embeddings(encode_text: Callable, tokenize: Callable, class_names: Sequence[str],
                     templates: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Prompt-ensembled class embeddings, float32 [C, D], unit L2 norm per row.

    tokenize(list[str]) -> int32 [N, L]; encode_text(int32 [batch_size, L]) -> [batch_size, D].
    Prompts are encoded ``batch_size`` at a time, the last chunk padded to the full size.
    """
    prompts = _prompts(class_names, templates)
    tokens = np.asarray(tokenize(prompts))
    if tokens.ndim != 2 or tokens.shape[0] != len(prompts):
        raise ValueError(
            f"tokenize(list of {len(prompts)} strings) must return [{len(prompts)}, L] token ids; "
            f"it returned shape {tokens.shape}.")
    return ensemble(encode_in_chunks(encode_text, tokens, batch_size), len(class_names))


def ensemble(prompt_emb: np.ndarray, num_classes: int) -> np.ndarray:
    """Class embeddings float32 [C, D] from prompt embeddings [C * T, D] (class-major, T prompts
    per class): the mean of the L2-normalised prompts of each class, re-normalised."""
    prompt_emb = _l2_normalise(prompt_emb)
    if num_classes < 1 or len(prompt_emb) % num_classes:
        raise ValueError(f"{len(prompt_emb)} prompt embeddings do not split into {num_classes} "
                         "classes with the same number of prompts each.")
    return _l2_normalise(prompt_emb.reshape(num_classes, len(prompt_emb) // num_classes, -1).mean(axis=1))


@jax.jit
def zeroshot_scores(image_emb, class_emb) -> jax.Array:
    """Cosine-similarity scores float32 [N, C] (embeddings are assumed L2-normalised)."""
    image_emb = jnp.asarray(image_emb, jnp.float32)
    class_emb = jnp.asarray(class_emb, jnp.float32)
    return jnp.matmul(image_emb, class_emb.T, precision=_HIGHEST)


@jax.jit
def zeroshot_ranks(image_emb, labels, class_emb) -> jax.Array:
    """Rank of the true class per image, int32 [N]: number of other classes scoring >= it."""
    scores = zeroshot_scores(image_emb, class_emb)
    labels = jnp.asarray(labels, jnp.int32)
    true = jnp.take_along_axis(scores, labels[:, None], axis=1)
    others = jnp.arange(scores.shape[1])[None, :] != labels[:, None]
    return jnp.sum(~(scores < true) & others, axis=1, dtype=jnp.int32)  # NaN counts against


def _check_inputs(image_emb, labels, class_emb, mask) -> tuple:
    """Numpy labels/mask after shape and range checks with readable errors."""
    n, c = np.shape(image_emb)[0], np.shape(class_emb)[0]
    if np.ndim(image_emb) != 2 or np.ndim(class_emb) != 2 or np.shape(image_emb)[1] != np.shape(class_emb)[1]:
        raise ValueError(
            f"image_emb must be [N, D] and class_emb [C, D] with the same D; got "
            f"{np.shape(image_emb)} and {np.shape(class_emb)}.")
    labels = np.asarray(labels).reshape(-1)
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    if labels.shape != (n,) or mask.shape != (n,):
        raise ValueError(
            f"labels and mask must have one entry per image ({n}); got {labels.shape} and {mask.shape}.")
    valid = labels[mask]
    if valid.size and (valid.min() < 0 or valid.max() >= c):
        raise ValueError(
            f"labels must lie in [0, {c}) for {c} class embeddings; got values from "
            f"{valid.min()} to {valid.max()}.")
    return np.where(mask, labels, 0).astype(np.int32), mask


def zeroshot_metrics(image_emb, labels, class_emb, mask=None) -> Dict[str, float]:
    """{"top1", "top5"} accuracies over the examples where mask is True (all if None)."""
    labels, mask = _check_inputs(image_emb, labels, class_emb, mask)
    if not mask.any():
        raise ValueError("zeroshot_metrics got no valid examples (mask is all False).")
    ranks = np.asarray(zeroshot_ranks(image_emb, labels, class_emb))[mask]
    return {"top1": float(np.mean(ranks < 1)), "top5": float(np.mean(ranks < 5))}


@functools.partial(jax.jit, static_argnames="num_classes")
def _confusion(labels, predictions, weights, num_classes: int) -> jax.Array:
    """Counts [C, C] of (true, predicted) pairs, weighted by 0/1 weights."""
    flat = labels * num_classes + predictions
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[flat].add(weights)
    return counts.reshape(num_classes, num_classes)


def confusion_matrix(labels, predictions, num_classes: int, mask=None) -> np.ndarray:
    """Counts int64 [C, C]: row = true class, column = predicted class (masked rows skipped)."""
    labels = np.asarray(labels, np.int32).reshape(-1)
    predictions = np.asarray(predictions, np.int32).reshape(-1)
    mask = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    if not labels.shape == predictions.shape == mask.shape:
        raise ValueError(
            f"labels, predictions and mask must have the same length; got {labels.shape}, "
            f"{predictions.shape}, {mask.shape}.")
    both = np.concatenate([labels[mask], predictions[mask]])
    if both.size and (both.min() < 0 or both.max() >= num_classes):
        raise ValueError(
            f"labels and predictions must lie in [0, {num_classes}); got {both.min()}..{both.max()}.")
    weights = mask.astype(np.int32)
    labels, predictions = np.where(mask, labels, 0), np.where(mask, predictions, 0)
    return np.asarray(_confusion(labels, predictions, weights, num_classes), np.int64)


def zeroshot_confusion(image_emb, labels, class_emb, mask=None) -> np.ndarray:
    """Zero-shot confusion matrix int64 [C, C] (prediction = argmax score, first on ties)."""
    labels, mask = _check_inputs(image_emb, labels, class_emb, mask)
    predictions = np.asarray(jnp.argmax(zeroshot_scores(image_emb, class_emb), axis=1))
    return confusion_matrix(labels, predictions, np.shape(class_emb)[0], mask)
