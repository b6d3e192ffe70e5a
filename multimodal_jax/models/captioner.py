"""Image captioner: a ViT image tower whose tokens a Transformer text decoder cross-attends to
(CoCa's captioning branch / CapPa).

``Captioner(image_tower=ViT(...), decoder=TextDecoder(...))``. ``apply(v, images, tokens)``
returns next-token logits ``[B, L, V]`` for decoder inputs ``tokens``; the methods
``encode_image`` (images -> memory ``[B, N, D]``) and ``decode`` (tokens, memory -> logits) let
decoding encode each image once. With ``pooled_token`` the tower's pooled vector (e.g. its MAP
head, which a contrastive run trained) is put in front of the patch tokens.

Token layout (``inputs_and_targets``): captions are the tokenizer's rows ``[bos] ids eos pad..``;
the decoder reads ``[start] ids`` and predicts ``ids eos``, with ``start`` the bos id, or the pad
id for tokenizers without one (T5's convention).
"""

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp


class Captioner(nn.Module):
    """Image tower + text decoder."""

    image_tower: nn.Module
    decoder: nn.Module
    pooled_token: bool = True

    def encode_image(self, images):
        """The decoder's memory ``[B, N(+1), D_image]``: the tower's tokens (and pooled vector)."""
        out = self.image_tower(images)
        if self.pooled_token and out["pooled"].ndim == 2:
            return jnp.concatenate([out["pooled"][:, None], out["tokens"]], axis=1)
        return out["tokens"]

    def decode(self, tokens, memory, decode: bool = False, index=None, bidirectional=None):
        """Next-token logits ``[B, L, V]`` (float32) of decoder inputs ``tokens``."""
        return self.decoder(tokens, memory, decode=decode, index=index, bidirectional=bidirectional)

    def __call__(self, images, tokens, bidirectional=None):
        return self.decode(tokens, self.encode_image(images), bidirectional=bidirectional)


def start_id(bos_id: Optional[int], pad_id: int) -> int:
    """The decoder's first input: the tokenizer's bos, else its pad id."""
    return pad_id if bos_id is None else bos_id


def inputs_and_targets(tokens, bos_id: Optional[int], pad_id: int):
    """Teacher forcing: caption rows ``[B, L]`` -> decoder inputs and targets of equal length
    (``L - 1`` with a bos, which is never predicted; else ``L``, after a start pad)."""
    if bos_id is not None:
        return tokens[:, :-1], tokens[:, 1:]
    start = jnp.full((tokens.shape[0], 1), pad_id, tokens.dtype)
    return jnp.concatenate([start, tokens[:, :-1]], axis=1), tokens


def target_length(max_len: int, bos_id: Optional[int]) -> int:
    """How many tokens the decoder predicts for caption rows of ``max_len``."""
    return max_len - 1 if bos_id is not None else max_len


def as_caption_rows(generated, bos_id: Optional[int]):
    """Generated targets ``[B, T]`` -> rows in the tokenizer's layout (bos put back in front)."""
    if bos_id is None:
        return generated
    return jnp.concatenate([jnp.full((generated.shape[0], 1), bos_id, generated.dtype), generated],
                           axis=1)
