"""Image <-> text retrieval recall@k, computed on device a chunk of queries at a time.

Texts map to images through ``image_index`` (text t describes image image_index[t]); aligned
pairs are image_index = arange(N), COCO is 5 (or more) captions per image. Scores are dot
products at float32 HIGHEST precision, so pass L2-normalised embeddings for cosine scores.
Only a [chunk_size, N_other] block of scores exists at any time (a jax.lax.map over chunks),
so COCO's 5k images x 25k captions never builds the full matrix.

Ranks, 0 = best, with ties counted against the query (they never inflate recall):
  i2t: number of non-matching texts scoring >= the image's best-scoring matching caption;
       a hit at k iff rank < k (some caption of the image is in the top k).
  t2i: number of non-matching images scoring >= the text's best matching image (its own
       image, or with ``text_ids`` any image whose caption is identical); hit iff rank < k.
A NaN score also counts against the query, so broken embeddings read as recall 0, not 1.
"""

import functools
from typing import Dict
from typing import Optional
from typing import Sequence
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


def _chunked(x: jax.Array, chunk_size: int) -> jax.Array:
    """[N, ...] -> [ceil(N / chunk_size), chunk_size, ...], zero-padded at the end."""
    pad = (-x.shape[0]) % chunk_size
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape((-1, chunk_size) + x.shape[1:])


@functools.partial(jax.jit, static_argnames="chunk_size")
def _ranks(queries, items, query_keys, item_keys, chunk_size: int) -> jax.Array:
    """Per query: non-matching items scoring >= its best matching item, int32 [N_query].

    A query matches the items with the same key. NaN scores count against the query."""
    n = queries.shape[0]

    def one_chunk(args):
        chunk, keys = args
        scores = jnp.matmul(chunk, items.T, precision=_HIGHEST)  # [chunk, N_items]
        positive = item_keys[None, :] == keys[:, None]
        best = jnp.max(jnp.where(positive, scores, -jnp.inf), axis=1, keepdims=True)
        return jnp.sum(~(scores < best) & ~positive, axis=1, dtype=jnp.int32)

    chunks = (_chunked(queries, chunk_size), _chunked(query_keys, chunk_size))
    return jax.lax.map(one_chunk, chunks).reshape(-1)[:n]


def _check_shapes(image_emb, text_emb) -> None:
    """Both [N, D] with the same D and N > 0, or a readable error."""
    if np.ndim(image_emb) != 2 or np.ndim(text_emb) != 2 or np.shape(image_emb)[1] != np.shape(text_emb)[1]:
        raise ValueError(
            f"image_emb must be [N_img, D] and text_emb [N_txt, D] with the same D; got "
            f"{np.shape(image_emb)} and {np.shape(text_emb)}.")
    if np.shape(image_emb)[0] == 0 or np.shape(text_emb)[0] == 0:
        raise ValueError("Retrieval needs at least one image and one text; got none.")


def _match_keys(n_img: int, n_txt: int, image_index, text_ids) -> Tuple[np.ndarray, np.ndarray]:
    """(image keys int32 [N_img], text keys int32 [N_txt]): image i matches text t iff keys agree."""
    if text_ids is not None:
        text_ids = np.asarray(text_ids).reshape(-1)
        if image_index is not None or n_img != n_txt or text_ids.shape != (n_txt,):
            raise ValueError(
                f"text_ids is for aligned pairs (text i describes image i) with duplicate captions: "
                f"pass as many texts as images, one id per text, and no image_index; got {n_img} "
                f"images, {n_txt} texts, text_ids shape {text_ids.shape}, image_index "
                f"{'given' if image_index is not None else 'None'}.")
        _, keys = np.unique(text_ids, return_inverse=True)
        return keys.astype(np.int32), keys.astype(np.int32)
    if image_index is None:
        if n_img != n_txt:
            raise ValueError(
                f"Got {n_img} images and {n_txt} texts but no image_index. For aligned pairs pass "
                f"as many texts as images; for several captions per image pass image_index "
                f"(int [N_txt], the image each text describes).")
        return np.arange(n_img, dtype=np.int32), np.arange(n_txt, dtype=np.int32)
    image_index = np.asarray(image_index).reshape(-1)
    if image_index.shape != (n_txt,):
        raise ValueError(f"image_index needs one entry per text ({n_txt}); got shape {image_index.shape}.")
    if image_index.min() < 0 or image_index.max() >= n_img:
        raise ValueError(
            f"image_index must lie in [0, {n_img}); got values {image_index.min()}..{image_index.max()}.")
    uncovered = np.setdiff1d(np.arange(n_img), image_index)
    if uncovered.size:
        raise ValueError(
            f"{uncovered.size} images have no caption (first: {uncovered[:5].tolist()}); image->text "
            f"recall is undefined for them. Drop those images or add their captions.")
    return np.arange(n_img, dtype=np.int32), image_index.astype(np.int32)


def retrieval_ranks(image_emb, text_emb, image_index=None, chunk_size: int = 512,
                    text_ids=None) -> Tuple[np.ndarray, np.ndarray]:
    """(i2t ranks int [N_img], t2i ranks int [N_txt]), 0 = best; see the module doc for ties."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
    _check_shapes(image_emb, text_emb)
    image_keys, text_keys = _match_keys(len(image_emb), len(text_emb), image_index, text_ids)
    image_emb = jnp.asarray(image_emb, jnp.float32)
    text_emb = jnp.asarray(text_emb, jnp.float32)
    image_keys, text_keys = jnp.asarray(image_keys), jnp.asarray(text_keys)
    i2t = _ranks(image_emb, text_emb, image_keys, text_keys, chunk_size=chunk_size)
    t2i = _ranks(text_emb, image_emb, text_keys, image_keys, chunk_size=chunk_size)
    return np.asarray(i2t), np.asarray(t2i)


def retrieval_metrics(image_emb, text_emb, ks: Sequence[int] = (1, 5, 10),
                      image_index: Optional[np.ndarray] = None,
                      chunk_size: int = 512, text_ids=None) -> Dict[str, float]:
    """Recall@k in [0, 1] as {"i2t_r1", "i2t_r5", ..., "t2i_r1", ...}.

    image_emb [N_img, D], text_emb [N_txt, D]; image_index int [N_txt] maps each text to its
    image (default: aligned pairs, text i <-> image i). text_ids [N_txt] (aligned pairs only;
    ints, or simply the caption strings) marks identical captions: image i then matches every
    text whose id equals text_ids[i], so a repeated caption (common in synthetic data) is not
    scored as a miss.
    """
    i2t, t2i = retrieval_ranks(image_emb, text_emb, image_index, chunk_size, text_ids)
    out = {}
    for direction, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in ks:
            out[f"{direction}_r{int(k)}"] = float(np.mean(ranks < k))
    return out
