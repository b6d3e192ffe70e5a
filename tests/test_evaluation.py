"""Zero-shot, retrieval and figure helpers against plain numpy references and known answers."""

import numpy as np
import pytest
from PIL import Image

from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import retrieval
from multimodal_jax.evaluation import zeroshot


def _unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _random_unit(n, d, seed):
    return _unit(np.random.default_rng(seed).normal(size=(n, d)))


# ---------------------------------------------------------------- zero-shot


def test_zeroshot_known_answer():
    classes = np.eye(6, 8, dtype=np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    images = classes[labels] + 0.05
    # Images 8 and 9 look more like class 5 than their own: true class is second -> top-5 hit.
    images[8] = 0.9 * classes[5] + 0.3 * classes[2]
    images[9] = 0.9 * classes[5] + 0.3 * classes[3]
    metrics = zeroshot.zeroshot_metrics(_unit(images), labels, classes)
    assert metrics == {"top1": 0.8, "top5": 1.0}
    mask = np.arange(10) < 8  # the two mistakes are padding
    assert zeroshot.zeroshot_metrics(_unit(images), labels, classes, mask=mask)["top1"] == 1.0
    scores = np.asarray(zeroshot.zeroshot_scores(_unit(images), classes))
    np.testing.assert_allclose(scores, _unit(images) @ classes.T, rtol=1e-6, atol=1e-7)


def test_zeroshot_ties_do_not_count():
    images = np.tile(_unit([[1.0, 0.0, 0.0]]), (4, 1))
    classes = np.tile(_unit([[1.0, 1.0, 0.0]]), (3, 1))  # every class scores the same
    metrics = zeroshot.zeroshot_metrics(images, np.array([0, 1, 2, 0]), classes)
    assert metrics["top1"] == 0.0 and metrics["top5"] == 1.0  # rank 2 of 3 classes
    nan_images = np.full((2, 3), np.nan, np.float32)
    assert zeroshot.zeroshot_metrics(nan_images, np.array([0, 1]), classes)["top1"] == 0.0


def test_zeroshot_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        zeroshot.zeroshot_metrics(_random_unit(3, 4, 0), np.array([0, 1, 7]), _random_unit(5, 4, 1))
    with pytest.raises(ValueError, match="no valid examples"):
        zeroshot.zeroshot_metrics(_random_unit(2, 4, 0), np.array([0, 1]), _random_unit(5, 4, 1),
                                  mask=np.zeros(2, bool))


def _fake_text_model(batch_size=None, d=6, seed=0):
    """tokenize: hashes words to ids; encode_text: a fixed random projection, normalised.

    With batch_size set, encode_text refuses any other batch size (like a compiled model)."""
    projection = np.random.default_rng(seed).normal(size=(4, 97, d))
    calls = []

    def tokenize(texts):
        ids = np.zeros((len(texts), 4), np.int32)
        for i, text in enumerate(texts):
            words = text.replace(".", " .").split()[:4]
            ids[i, :len(words)] = [sum(map(ord, w)) % 96 + 1 for w in words]
        return ids

    def encode_text(tokens):
        calls.append(len(tokens))
        if batch_size is not None and len(tokens) != batch_size:
            raise AssertionError(f"expected batch {batch_size}, got {len(tokens)}")
        emb = sum(projection[pos][tokens[:, pos]] for pos in range(tokens.shape[1]))
        return _unit(emb)

    return tokenize, encode_text, calls


@pytest.mark.parametrize("batch_size", [1, 4, 7, 64])
def test_class_embeddings_prompt_ensemble(batch_size):
    names = ["red circle", "blue square", "green star"]
    templates = ["a {}.", "a photo of a {}.", "{}", "a picture of a {}"]
    tokenize, encode_text, calls = _fake_text_model(batch_size)
    got = zeroshot.class_embeddings(encode_text, tokenize, names, templates, batch_size=batch_size)

    ref_tokenize, ref_encode, _ = _fake_text_model()
    expected = []
    for name in names:
        prompts = ref_encode(ref_tokenize([t.format(name) for t in templates])).astype(np.float64)
        mean = (prompts / np.linalg.norm(prompts, axis=1, keepdims=True)).mean(axis=0)
        expected.append(mean / np.linalg.norm(mean))
    assert got.shape == (3, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.array(expected), atol=1e-6)
    assert calls == [batch_size] * int(np.ceil(12 / batch_size))


def test_class_embeddings_rejects_template_without_slot():
    tokenize, encode_text, _ = _fake_text_model()
    with pytest.raises(ValueError, match="must contain"):
        zeroshot.class_embeddings(encode_text, tokenize, ["a"], ["a photo"], batch_size=2)


def test_confusion_matrix_matches_numpy():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    mask = rng.random(40) < 0.7
    expected = np.zeros((5, 5), np.int64)
    np.add.at(expected, (labels[mask], predictions[mask]), 1)
    np.testing.assert_array_equal(zeroshot.confusion_matrix(labels, predictions, 5, mask), expected)


def test_zeroshot_confusion_diagonal_is_top1():
    images, classes = _random_unit(30, 8, 0), _random_unit(5, 8, 1)
    labels = np.random.default_rng(2).integers(0, 5, 30)
    matrix = zeroshot.zeroshot_confusion(images, labels, classes)
    top1 = zeroshot.zeroshot_metrics(images, labels, classes)["top1"]
    assert matrix.sum() == 30 and np.trace(matrix) == round(top1 * 30)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(labels, minlength=5))


# ---------------------------------------------------------------- retrieval


def _reference_recalls(image_emb, text_emb, relevant, ks):
    """Brute force: sort the full score matrix, find where the first relevant item lands.

    relevant: bool [N_img, N_txt]."""
    scores = image_emb.astype(np.float64) @ text_emb.astype(np.float64).T
    i2t = np.array([np.flatnonzero(relevant[i, np.argsort(-row)])[0] for i, row in enumerate(scores)])
    t2i = np.array([np.flatnonzero(relevant[np.argsort(-col), t])[0] for t, col in enumerate(scores.T)])
    out = {f"i2t_r{k}": np.mean(i2t < k) for k in ks}
    out.update({f"t2i_r{k}": np.mean(t2i < k) for k in ks})
    return out


def _relevant(image_index, n_img):
    return np.arange(n_img)[:, None] == np.asarray(image_index)[None, :]


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_retrieval_aligned_pairs_match_brute_force(chunk_size):
    images = _random_unit(50, 8, 0)
    texts = _unit(images + 0.6 * np.random.default_rng(1).normal(size=images.shape))
    got = retrieval.retrieval_metrics(images, texts, ks=(1, 5, 10), chunk_size=chunk_size)
    expected = _reference_recalls(images, texts, _relevant(np.arange(50), 50), (1, 5, 10))
    assert set(got) == {"i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert 0.0 < got["i2t_r1"] < got["i2t_r10"] < 1.0  # a non-trivial case


@pytest.mark.parametrize("chunk_size", [3, 64, 4096])
def test_retrieval_multi_caption_matches_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    images = _random_unit(30, 8, 0)
    counts = rng.integers(1, 7, 30)  # 1..6 captions per image, like COCO's 5-7
    image_index = rng.permutation(np.repeat(np.arange(30), counts))
    texts = _unit(images[image_index] + 0.8 * rng.normal(size=(len(image_index), 8)))
    ks = (1, 5, 10)
    got = retrieval.retrieval_metrics(images, texts, ks, image_index=image_index, chunk_size=chunk_size)
    expected = _reference_recalls(images, texts, _relevant(image_index, 30), ks)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("chunk_size", [4, 512])
def test_retrieval_duplicate_captions_match_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    captions = rng.choice(["a red circle.", "a blue star.", "a cyan ring.", "a red star."], 40)
    vocab = {c: v for c, v in zip(sorted(set(captions)), _random_unit(4, 8, 1))}
    texts = np.stack([vocab[c] for c in captions])  # identical captions, identical embeddings
    images = _unit(texts + 0.7 * rng.normal(size=texts.shape))
    ks = (1, 5, 10)
    got = retrieval.retrieval_metrics(images, texts, ks, chunk_size=chunk_size, text_ids=captions)
    expected = _reference_recalls(images, texts, captions[:, None] == captions[None, :], ks)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["i2t_r1"] > 0.5  # without text_ids, ties with repeated captions would count as misses
    assert retrieval.retrieval_metrics(images, texts, ks)["i2t_r1"] == 0.0


def test_retrieval_ties_count_against_the_query():
    same = np.tile(_unit([[1.0, 2.0, 3.0]]), (20, 1))
    metrics = retrieval.retrieval_metrics(same, same, ks=(1, 5, 10))
    assert all(v == 0.0 for v in metrics.values())  # all tied: no query may claim rank 0
    # Images 0 and 1 identical: their texts rank 1 (a tie with the twin), so miss at 1, hit at 5.
    images = _random_unit(10, 8, 0)
    images[1] = images[0]
    i2t, t2i = retrieval.retrieval_ranks(images, images.copy())
    assert t2i[0] == 1 and t2i[1] == 1 and i2t[0] == 1 and i2t[1] == 1
    assert np.all(t2i[2:] == 0) and np.all(i2t[2:] == 0)
    # A tie between two captions of the same image is not a miss.
    texts = np.stack([images[2], images[2], images[3]])
    i2t, _ = retrieval.retrieval_ranks(images[2:4], texts, image_index=np.array([0, 0, 1]))
    np.testing.assert_array_equal(i2t, [0, 0])
    nan = np.full((5, 8), np.nan, np.float32)
    assert retrieval.retrieval_metrics(nan, nan, ks=(1,))["i2t_r1"] == 0.0


def test_retrieval_input_errors():
    images, texts = _random_unit(4, 8, 0), _random_unit(6, 8, 1)
    with pytest.raises(ValueError, match="image_index"):
        retrieval.retrieval_metrics(images, texts)
    with pytest.raises(ValueError, match="no caption"):
        retrieval.retrieval_metrics(images, texts, image_index=np.array([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="text_ids is for aligned pairs"):
        retrieval.retrieval_metrics(images, texts, image_index=np.arange(6) % 4, text_ids=np.arange(6))
    with pytest.raises(ValueError, match="same D"):
        retrieval.retrieval_metrics(images, _random_unit(4, 5, 1))


# ---------------------------------------------------------------- figures


def _open_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image


def test_to_uint8_inverts_normalisation():
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype(np.uint8)
    normalised = (pixels / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_array_equal(figures.to_uint8(normalised, mean, std), pixels)


def test_retrieval_grid_png(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    captions = [f"a {c} circle on the left" for c in ("red", "green", "blue", "cyan", "white")]
    retrieved = [[captions[(i + j) % 5] for j in range(3)] for i in range(5)]
    retrieved[4][2] = "an" + "x" * 200  # an unbreakable word must still fit the cell
    correct = [[j == 0 for j in range(3)] for _ in range(5)]
    path = figures.retrieval_grid(images, captions, retrieved, correct, str(tmp_path / "grid.png"),
                                  columns=3, title="retrieval")
    image = _open_png(path)
    assert image.mode == "RGB" and 600 <= image.width <= 1400 and 300 <= image.height <= 1400
    pixels = np.asarray(image)
    assert (pixels == figures._GREEN).all(-1).any() and (pixels == figures._RED).all(-1).any()
    with pytest.raises(ValueError, match="one caption"):
        figures.retrieval_grid(images, captions[:2], retrieved, correct, str(tmp_path / "bad.png"))


@pytest.mark.parametrize("num_classes", [3, 64])
def test_confusion_matrix_png(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 4, (num_classes, num_classes)) + np.diag(rng.integers(5, 20, num_classes))
    matrix[1] = 0  # a class without examples
    names = [f"colour{i} shape{i}" for i in range(num_classes)]
    path = figures.confusion_matrix_png(matrix, names, str(tmp_path / "cm.png"), group_size=8)
    image = _open_png(path)
    assert 200 <= image.width <= 1600 and 200 <= image.height <= 1600
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 10  # not blank
