"""Caption decoding: the KV cache gives the logits and tokens of decoding without it (greedy,
beam, sampling), beam search with beam 1 is greedy, beam search finds the best sequence of a
small Markov model, top-k 1 sampling is greedy, rows stop at eos."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax import decoding
from multimodal_jax.models import captioner, decoder, vit

BOS, EOS, PAD, VOCAB, STEPS = 1, 2, 0, 16, 6


@pytest.fixture(scope="module")
def model_and_params():
    """A tiny captioner with random (not zero) parameters, so tokens differ by image and step."""
    model = captioner.Captioner(
        image_tower=vit.ViT(width=32, depth=1, mlp_dim=64, num_heads=2, patch_size=4, pool="map"),
        decoder=decoder.TextDecoder(vocab_size=VOCAB, width=32, depth=1, mlp_dim=64, num_heads=2,
                                    max_len=STEPS + 1))
    images = jnp.zeros((1, 16, 16, 3))
    params = model.init(jax.random.key(0), images, jnp.zeros((1, STEPS), jnp.int32))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(tree, [x + 0.5 * jax.random.normal(k, x.shape)
                                       for x, k in zip(leaves, keys)])
    head = params["decoder"]["head"]
    head["bias"] = head["bias"].at[EOS].add(4.0).at[BOS].add(-5.0)  # some end early; no bos
    return model, params


def _images(n=6, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, 16, 16, 3)), jnp.float32)


RUNS = {  # name: generate's keyword arguments; each is compiled once for the module
    "greedy": dict(method="greedy"), "greedy_plain": dict(method="greedy", use_cache=False),
    "beam": dict(method="beam", beam_size=3),
    "beam_plain": dict(method="beam", beam_size=3, use_cache=False),
    "sample": dict(method="sample", temperature=1.5, top_k=5),
    "sample_plain": dict(method="sample", temperature=1.5, top_k=5, use_cache=False),
    "beam1": dict(method="beam", beam_size=1), "top1": dict(method="sample", top_k=1),
}


@pytest.fixture(scope="module")
def outputs(model_and_params):
    """Tokens and log-probabilities of every run in ``RUNS`` on the same images."""
    model, params = model_and_params
    images = _images()
    out = {}
    for name, kwargs in RUNS.items():
        fn = jax.jit(functools.partial(decoding.generate, model, steps=STEPS, bos_id=BOS,
                                       eos_id=EOS, pad_id=PAD, rng=jax.random.key(3), **kwargs))
        out[name] = tuple(np.asarray(x) for x in fn(params, images))
    return out


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_cache_gives_the_tokens_of_no_cache(outputs, method):
    (cached, lp_cached), (plain, lp_plain) = outputs[method], outputs[method + "_plain"]
    np.testing.assert_array_equal(cached, plain)
    np.testing.assert_allclose(lp_cached, lp_plain, atol=1e-4)
    assert len({row.tobytes() for row in cached}) > 1  # the images get different captions


def test_beam_one_is_greedy_and_top_k_one_sampling_is_greedy(outputs):
    greedy, lp = outputs["greedy"]
    np.testing.assert_array_equal(outputs["beam1"][0], greedy)
    np.testing.assert_allclose(outputs["beam1"][1], lp, atol=1e-5)
    np.testing.assert_array_equal(outputs["top1"][0], greedy)


def test_rows_start_with_bos_and_hold_pad_after_eos(outputs):
    assert any((tokens == EOS).any() for tokens, _ in outputs.values())
    for name, (tokens, _) in outputs.items():
        assert tokens.shape == (6, STEPS + 1) and (tokens[:, 0] == BOS).all()
        for row in tokens[:, 1:]:
            ends = np.flatnonzero(row == EOS)
            if ends.size:
                assert (row[ends[0] + 1:] == PAD).all(), (name, row)


def _markov(table):
    """A step function whose logits depend on the previous token only."""
    return lambda state, token, i: (table[token], state)


def _best_sequence(logp, start, steps):
    """Exhaustive search: the most likely token sequence (pads after eos, score stops there)."""
    best, best_score = None, -np.inf
    for seq in itertools.product(range(logp.shape[0]), repeat=steps):
        if EOS in seq and any(t != PAD for t in seq[seq.index(EOS) + 1:]):
            continue
        score, prev = 0.0, start
        for t in seq[: seq.index(EOS) + 1] if EOS in seq else seq:
            score, prev = score + logp[prev, t], t
        if score > best_score:
            best, best_score = seq, score
    return np.array(best), best_score


def test_beam_search_finds_the_most_likely_sequence():
    vocab, steps = 4, 3
    for seed in range(4):
        table = jnp.asarray(np.random.default_rng(seed).normal(scale=2.0, size=(vocab, vocab)),
                            jnp.float32)
        logp = np.asarray(jax.nn.log_softmax(table))
        want, want_score = _best_sequence(logp, BOS, steps)
        got, score = decoding.beam_search(_markov(table), {}, jnp.array([BOS]), steps, EOS, PAD,
                                          beam_size=vocab ** (steps - 1))
        np.testing.assert_array_equal(np.asarray(got)[0], want)
        np.testing.assert_allclose(float(score[0]), want_score, rtol=1e-5)
        _, greedy_score = decoding.greedy(_markov(table), {}, jnp.array([BOS]), steps, EOS, PAD)
        assert float(greedy_score[0]) <= want_score + 1e-5


def test_top_k_keeps_the_k_largest_and_bad_settings_are_refused():
    logits = jnp.array([[0.0, 3.0, 1.0, 2.0]])
    kept = np.asarray(decoding.top_k_logits(logits, 2))
    np.testing.assert_array_equal(np.isfinite(kept), [[False, True, False, True]])
    with pytest.raises(ValueError, match="temperature"):
        decoding.sample(_markov(jnp.zeros((4, 4))), {}, jnp.array([BOS]), 2, EOS, PAD,
                        jax.random.key(0), temperature=0.0)
    with pytest.raises(ValueError, match="decoding method"):
        decoding.generate(None, None, None, steps=2, bos_id=BOS, eos_id=EOS, pad_id=PAD,
                          method="nucleus")
