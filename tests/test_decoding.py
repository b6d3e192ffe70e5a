"""Caption decoding: the KV cache gives the logits and tokens of decoding without it (greedy,
beam, sampling), beam search with beam 1 is greedy, beam search finds the best sequence of a
small Markov model, top-k 1 sampling is greedy, rows stop at eos."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.models import captioner
from multimodal_jax.models import decoder
from multimodal_jax.models import decoding
from multimodal_jax.models import vit

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


def test_prompt_logprobs_are_the_teacher_forced_log_likelihoods(model_and_params):
    """Each (image, prompt) score equals minus the summed NLL of teacher forcing that prompt
    on that image without a cache; 5 prompts in chunks of 2 exercise the padding and ordering."""
    model, params = model_and_params
    images = _images(3, seed=4)
    rng = np.random.default_rng(5)
    prompts = np.full((5, STEPS + 1), PAD, np.int32)
    for row, length in zip(prompts, [1, 2, 3, 5, STEPS - 1]):
        row[0], row[1:length + 1], row[length + 1] = BOS, rng.integers(3, VOCAB, length), EOS
    got = np.asarray(decoding.prompt_logprobs(model, params, images, jnp.asarray(prompts),
                                              bos_id=BOS, pad_id=PAD, chunk=2))
    inputs, targets = captioner.inputs_and_targets(jnp.asarray(prompts), BOS, PAD)
    want = np.zeros((3, 5))
    for i in range(3):
        logits = model.apply({"params": params}, jnp.repeat(images[i:i + 1], 5, axis=0), inputs)
        want[i] = -np.asarray(decoding.token_losses(logits, targets, PAD)[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # float32, another summation order
    assert len(np.unique(np.round(got, 3))) > 5  # the scores differ by image and prompt


class _Tokenizer:
    """Ids as strings, enough to check ``caption``'s wiring."""

    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def decode(self, rows):
        return [" ".join(str(t) for t in row if t not in (BOS, EOS, PAD)) for row in rows]


def test_caption_gives_the_greedy_rows_as_strings(model_and_params, outputs):
    model, params = model_and_params
    texts = decoding.caption(model, params, _images(), _Tokenizer(), max_len=STEPS + 1)
    assert texts == _Tokenizer().decode(outputs["greedy"][0])
