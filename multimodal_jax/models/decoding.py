"""Jitted caption decoding: greedy, beam search, temperature / top-k sampling, with a KV cache.

The searches are model-agnostic: they call ``step_fn(state, token [N], i) -> (logits [N, V],
state)``, where ``state`` is a pytree whose array leaves have the rows as leading axis (beam
search reorders them). Two step functions drive a ``Captioner``: ``cached_step`` (one position
per call; the cache holds every block's self-attention keys / values and its projection of the
image memory, made once by ``init_cache``) and ``uncached_step`` (the whole prefix and the
memory again each step: the reference the cache must match). Every search is a
``lax.while_loop`` that stops when all rows have emitted eos; positions after eos hold the pad
id.

``generate(model, params, images, ...)`` is the one entry point, jitted (the model and the
choices static): images in, caption rows in the tokenizer's layout out; ``caption(model,
params, images, tokenizer)`` returns the strings.
"""

import functools
from typing import Any
from typing import Callable
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from multimodal_jax.models import captioner

METHODS = ("greedy", "beam", "sample")
StepFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


# ----------------------------------------------------------------------------- searches


def _search(step_fn: StepFn, state, start, steps: int, eos_id: int, pad_id: int, choose):
    """One token per row per step, picked by ``choose(logits, i)``, until eos everywhere."""
    n = start.shape[0]

    def body(c):
        logits, state = step_fn(c["state"], c["token"], c["i"])
        token = jnp.where(c["done"], pad_id, choose(logits, c["i"]).astype(jnp.int32))
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], axis=1)[:, 0]
        return dict(i=c["i"] + 1, token=token, state=state, out=c["out"].at[:, c["i"]].set(token),
                    done=c["done"] | (token == eos_id),
                    logprob=c["logprob"] + jnp.where(c["done"], 0.0, logp))

    init = dict(i=jnp.int32(0), token=start.astype(jnp.int32), state=state,
                out=jnp.full((n, steps), pad_id, jnp.int32), done=jnp.zeros((n,), bool),
                logprob=jnp.zeros((n,), jnp.float32))
    c = jax.lax.while_loop(lambda c: (c["i"] < steps) & ~jnp.all(c["done"]), body, init)
    return c["out"], c["logprob"]


def greedy(step_fn: StepFn, state, start, steps: int, eos_id: int, pad_id: int):
    """The most likely token at each step: tokens ``[N, steps]`` and their log-probability."""
    return _search(step_fn, state, start, steps, eos_id, pad_id,
                   lambda logits, i: jnp.argmax(logits, axis=-1))


def top_k_logits(logits, k: int):
    """Logits with all but the ``k`` largest per row set to -inf (``k = 0``: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][:, -1:]
    return jnp.where(logits < kth, -jnp.inf, logits)


def sample(step_fn: StepFn, state, start, steps: int, eos_id: int, pad_id: int, rng,
           temperature: float = 1.0, top_k: int = 0):
    """Ancestral sampling from ``softmax(logits / temperature)``, restricted to the ``top_k``
    most likely tokens when ``top_k > 0``; step ``i`` draws with ``fold_in(rng, i)``."""
    if temperature <= 0:
        raise ValueError(f"Sampling needs temperature > 0, got {temperature}; use greedy for 0.")

    def choose(logits, i):
        return jax.random.categorical(jax.random.fold_in(rng, i),
                                      top_k_logits(logits / temperature, top_k), axis=-1)

    return _search(step_fn, state, start, steps, eos_id, pad_id, choose)


def _reorder(state, rows):
    """The state's rows ``rows`` (leaves without a row axis, e.g. a cache index, unchanged)."""
    return jax.tree.map(lambda x: x[rows] if jnp.ndim(x) else x, state)


def length_penalty_factor(length, alpha: float):
    """GNMT's ``((5 + length) / 6) ** alpha``: scores are divided by it (alpha 0: no effect)."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(step_fn: StepFn, state, start, steps: int, eos_id: int, pad_id: int,
                beam_size: int, length_penalty: float = 0.0):
    """Keeps the ``beam_size`` most likely prefixes per row; finished ones stay in the beam with
    their score (they can only be extended by pad). Returns the best beam's tokens ``[B, steps]``
    and its log-probability; with ``length_penalty`` the final choice divides by
    ``length_penalty_factor``. ``state`` has ``B`` rows; it is repeated per beam here."""
    b, k = start.shape[0], beam_size
    rows = lambda beams: (jnp.arange(b)[:, None] * k + beams).reshape(-1)  # noqa: E731
    state = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0) if jnp.ndim(x) else x, state)

    def body(c):
        logits, state = step_fn(c["state"], c["token"].reshape(-1), c["i"])
        logp = jax.nn.log_softmax(logits).reshape(b, k, -1)
        vocab = logp.shape[-1]
        only_pad = jnp.where(jnp.arange(vocab) == pad_id, 0.0, -jnp.inf)
        logp = jnp.where(c["done"][..., None], only_pad, logp)
        scores, flat = jax.lax.top_k((c["scores"][..., None] + logp).reshape(b, k * vocab), k)
        beams, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        out = jnp.take_along_axis(c["out"], beams[..., None], axis=1).at[:, :, c["i"]].set(token)
        done = jnp.take_along_axis(c["done"], beams, axis=1) | (token == eos_id)
        return dict(i=c["i"] + 1, token=token, state=_reorder(state, rows(beams)), out=out,
                    done=done, scores=scores)

    first = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)  # one live beam at the start
    init = dict(i=jnp.int32(0), token=jnp.repeat(start[:, None], k, axis=1).astype(jnp.int32),
                state=state, out=jnp.full((b, k, steps), pad_id, jnp.int32),
                done=jnp.zeros((b, k), bool), scores=jnp.broadcast_to(first, (b, k)))
    c = jax.lax.while_loop(lambda c: (c["i"] < steps) & ~jnp.all(c["done"]), body, init)
    lengths = jnp.sum(c["out"] != pad_id, axis=-1)
    best = jnp.argmax(c["scores"] / length_penalty_factor(lengths, length_penalty), axis=1)
    tokens = jnp.take_along_axis(c["out"], best[:, None, None], axis=1)[:, 0]
    return tokens, jnp.take_along_axis(c["scores"], best[:, None], axis=1)[:, 0]


# ----------------------------------------------------------------------------- scoring


def token_losses(logits, targets, pad_id: int):
    """Teacher-forced per-example sums over the non-pad targets: negative log-likelihood,
    number of targets and number predicted right (argmax), each ``[B]`` float32."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    valid = (targets != pad_id).astype(jnp.float32)
    right = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return jnp.sum(nll * valid, 1), jnp.sum(valid, 1), jnp.sum(right * valid, 1)


@functools.partial(jax.jit, static_argnums=0, static_argnames=("bos_id", "pad_id", "chunk"))
def prompt_logprobs(model, params, images, prompts, *, bos_id: Optional[int], pad_id: int,
                    chunk: int = 16):
    """``[B, P]``: the log-likelihood of each prompt (caption rows ``[P, L]``, eos included)
    given each image. Each image's memory is projected once into a KV cache, which every
    prompt then reads: ``chunk`` prompts at a time against the whole image batch."""
    memory = model.apply({"params": params}, images, method="encode_image")
    b = memory.shape[0]
    cache = init_cache(model, params, memory, jnp.full((b,), captioner.start_id(bos_id, pad_id)))
    inputs, targets = captioner.inputs_and_targets(prompts, bos_id, pad_id)
    count, extra = prompts.shape[0], (-prompts.shape[0]) % chunk
    inputs, targets = (jnp.pad(x, ((0, extra), (0, 0)), constant_values=pad_id).reshape(
        -1, chunk, x.shape[1]) for x in (inputs, targets))
    per_pair = jax.tree.map(lambda x: jnp.repeat(x, chunk, axis=0), cache)

    def one(args):
        inp, tgt = args  # [chunk, T]: row r of the pairs is image r // chunk, prompt r % chunk
        logits = model.apply({"params": params, "cache": per_pair}, jnp.tile(inp, (b, 1)), None,
                             decode=True, index=0, method="decode", mutable=["cache"])[0]
        return -token_losses(logits, jnp.tile(tgt, (b, 1)), pad_id)[0].reshape(b, chunk)

    scores = jax.lax.map(one, (inputs, targets))  # [chunks, B, chunk]
    return scores.transpose(1, 0, 2).reshape(b, -1)[:, :count]


# ----------------------------------------------------------------------------- model bindings


def init_cache(model, params, memory, start):
    """The KV cache of ``memory``'s rows: the image memory projected for every block and the
    start tokens ``[N]`` written at position 0 (the search's first step writes them again)."""
    return model.apply({"params": params}, start[:, None], memory, decode=True, index=0,
                       method="decode", mutable=["cache"])[1]["cache"]


def cached_step(model, params) -> StepFn:
    """Step function over the KV cache: one position per call."""
    def step(cache, token, i):
        logits, variables = model.apply({"params": params, "cache": cache}, token[:, None], None,
                                        decode=True, index=i, method="decode", mutable=["cache"])
        return logits[:, 0], variables["cache"]
    return step


def uncached_step(model, params) -> StepFn:
    """Step function over ``{"tokens", "memory"}``: the whole prefix through the decoder again."""
    def step(state, token, i):
        tokens = state["tokens"].at[:, i].set(token)
        logits = model.apply({"params": params}, tokens, state["memory"], method="decode")
        return jnp.take(logits, i, axis=1), {"tokens": tokens, "memory": state["memory"]}
    return step


@functools.partial(jax.jit, static_argnums=0, static_argnames=(
    "steps", "bos_id", "eos_id", "pad_id", "method", "beam_size", "temperature", "top_k",
    "length_penalty", "use_cache"))
def generate(model, params, images, *, steps: int, bos_id: Optional[int], eos_id: int,
             pad_id: int, method: str = "greedy", rng=None, beam_size: int = 4,
             temperature: float = 1.0, top_k: int = 0, length_penalty: float = 0.0,
             use_cache: bool = True):
    """Captions of ``images`` as int32 rows ``[B, steps (+1 with a bos)]`` in the tokenizer's
    layout, and their log-probabilities ``[B]``. ``steps`` is the number of generated tokens."""
    if method not in METHODS:
        raise ValueError(f"Unknown decoding method {method!r}; choose one of {METHODS}.")
    memory = model.apply({"params": params}, images, method="encode_image")
    start = jnp.full((memory.shape[0],), captioner.start_id(bos_id, pad_id), jnp.int32)
    if use_cache:
        step_fn, state = cached_step(model, params), init_cache(model, params, memory, start)
    else:
        tokens = jnp.full((memory.shape[0], steps), pad_id, jnp.int32)
        step_fn, state = uncached_step(model, params), {"tokens": tokens, "memory": memory}
    args = (step_fn, state, start, steps, eos_id, pad_id)
    if method == "greedy":
        out, logprob = greedy(*args)
    elif method == "sample":
        rng = rng if rng is not None else jax.random.key(0)
        out, logprob = sample(*args, rng, temperature, top_k)
    else:
        out, logprob = beam_search(*args, beam_size, length_penalty)
    return captioner.as_caption_rows(out, bos_id), logprob


def make_generate(model, decoding_config, max_len: int, bos_id: Optional[int], eos_id: int,
                  pad_id: int, seed: int = 0):
    """``generate`` with a config's choices bound: ``fn(params, images) -> rows`` of ``max_len``
    tokens (sampling draws from ``seed``). Compiled once per process for equal models and
    settings (``generate`` is jitted with them static)."""
    cfg = dict(decoding_config)
    kwargs = dict(steps=captioner.target_length(max_len, bos_id), bos_id=bos_id, eos_id=eos_id,
                  pad_id=pad_id, method=cfg.get("method", "greedy"),
                  beam_size=cfg.get("beam_size", 4),
                  temperature=float(cfg.get("temperature", 1.0)), top_k=cfg.get("top_k", 0),
                  length_penalty=float(cfg.get("length_penalty", 0.0)),
                  use_cache=cfg.get("use_cache", True))
    rng = jax.random.key(seed)
    return lambda params, images: generate(model, params, images, rng=rng, **kwargs)[0]


def caption(model, params, images, tokenizer, decoding_config=None, max_len: int = 16,
            seed: int = 0) -> list[str]:
    """The captions of a batch of images as strings: ``generate`` with the tokenizer's special
    ids and ``decoding_config``'s choices (default greedy, with the cache), rows of ``max_len``
    tokens, then ``tokenizer.decode``."""
    fn = make_generate(model, decoding_config or {}, max_len, bos_id=tokenizer.bos_id,
                       eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, seed=seed)
    return list(tokenizer.decode(np.asarray(fn(params, images))))
