"""Tokenizers: id layout, truncation, numpy/tf.data agreement, SentencePiece training, errors."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from multimodal_jax.data import shapes_builder
from multimodal_jax.data import tokenizers

TEXTS = ["a photo of a red circle.", "", "héllo wörld ✓",
         "a crimson disc to the left of a big blue square in the picture."]


def _tf_encode_all(tokenizer, texts, max_len):
    ds = tf.data.Dataset.from_tensor_slices(texts).map(
        lambda t: tokenizer.tf_encode(t, max_len))
    return np.stack(list(ds.as_numpy_iterator()))


def _check_layout(tokenizer, rows, max_len):
    assert rows.dtype == np.int32 and rows.shape[1] == max_len
    for row in rows.tolist():
        if tokenizer.bos_id is not None:
            assert row[0] == tokenizer.bos_id
        eos = row.index(tokenizer.eos_id)
        assert all(t == tokenizer.pad_id for t in row[eos + 1:])
        assert tokenizer.pad_id not in row[:eos]


@pytest.fixture(scope="module")
def captions():
    config = [c for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS if c.name == "tiny"][0]
    return [shapes_builder.generate_example(config, "train", i)["caption"] for i in range(1500)]


@pytest.fixture(scope="module")
def sp_path(captions, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("spm") / "sub" / "shapes.model")
    tokenizers.train_sentencepiece(captions, path, vocab_size=320)
    return path


def test_bytes_roundtrip_and_layout():
    tok = tokenizers.ByteTokenizer()
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (259, 0, 1, 2)
    rows = tok.encode(TEXTS, max_len=96)
    _check_layout(tok, rows, 96)
    assert tok.decode(rows) == TEXTS
    assert rows[0, 1:3].tolist() == [ord("a") + 3, ord(" ") + 3]
    assert rows[1, :3].tolist() == [1, 2, 0]  # empty text: bos eos pad


def test_truncation_keeps_eos_last():
    for tok in (tokenizers.ByteTokenizer(), tokenizers.ByteTokenizer(add_bos=False)):
        rows = tok.encode(TEXTS, max_len=8)
        _check_layout(tok, rows, 8)
        assert rows[3, -1] == tok.eos_id and rows[0, -1] == tok.eos_id
        assert tok.decode(rows[0]) == TEXTS[0][: 8 - 1 - (tok.bos_id is not None)]
    no_bos = tokenizers.ByteTokenizer(add_bos=False).encode(["ab"], max_len=4)
    assert no_bos.tolist() == [[ord("a") + 3, ord("b") + 3, 2, 0]]


def test_bytes_tf_encode_matches_encode():
    tok = tokenizers.ByteTokenizer(max_len=16)
    np.testing.assert_array_equal(_tf_encode_all(tok, TEXTS, 16), tok.encode(TEXTS))
    out = tok.tf_encode(tf.constant("abc"))
    assert out.dtype == tf.int32 and out.shape == (16,)


def test_max_len_errors():
    tok = tokenizers.ByteTokenizer()
    with pytest.raises(ValueError, match="max_len"):
        tok.encode(["x"])  # no default max_len
    with pytest.raises(ValueError, match="max_len"):
        tok.encode(["x"], max_len=1)  # no room for bos + eos


def test_sentencepiece_is_deterministic(captions, sp_path, tmp_path):
    other = str(tmp_path / "again.model")
    tokenizers.train_sentencepiece(captions, other, vocab_size=320)
    with open(sp_path, "rb") as a, open(other, "rb") as b:
        assert a.read() == b.read()


def test_sentencepiece_roundtrip_and_layout(captions, sp_path):
    tok = tokenizers.SentencePieceTokenizer(sp_path, max_len=24)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab_size <= 320
    rows = tok.encode(captions[:200])
    _check_layout(tok, rows, 24)
    assert tok.decode(rows) == captions[:200]
    # Caption words are whole pieces: short sequences, no unknown ids.
    assert (rows == 3).sum() == 0
    assert (rows != tok.pad_id).sum(axis=1).max() <= 20
    short = tok.encode(captions[:50], max_len=5)
    assert (short[:, -1] == tok.eos_id).all() and (short[:, 0] == tok.bos_id).all()


def test_sentencepiece_tf_encode_matches_encode(captions, sp_path):
    tok = tokenizers.SentencePieceTokenizer(sp_path)
    texts = captions[:64] + ["a photo of a red circle.", ""]
    for max_len in (24, 6):
        np.testing.assert_array_equal(_tf_encode_all(tok, texts, max_len),
                                      tok.encode(texts, max_len))


def test_sentencepiece_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_sentencepiece"):
        tokenizers.SentencePieceTokenizer(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_text("<pad>\t0\n<s>\t0\nthis is a .vocab file, not a model\n")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        tokenizers.SentencePieceTokenizer(str(bad))
    with pytest.raises(ValueError, match="at least one text"):
        tokenizers.train_sentencepiece([], str(tmp_path / "x.model"), 64)


def test_get_tokenizer(sp_path):
    def cfg(**kw):
        return ml_collections.ConfigDict(dict(dict(kind="bytes", path="", vocab_size=0, max_len=16), **kw))

    tok = tokenizers.get_tokenizer(cfg())
    assert isinstance(tok, tokenizers.ByteTokenizer) and tok.encode(["a"]).shape == (1, 16)
    tok = tokenizers.get_tokenizer(cfg(kind="sentencepiece", path=sp_path, vocab_size=320))
    assert isinstance(tok, tokenizers.SentencePieceTokenizer) and tok.max_len == 16
    with pytest.raises(ValueError, match="path"):
        tokenizers.get_tokenizer(cfg(kind="sentencepiece"))
    with pytest.raises(ValueError, match="kind"):
        tokenizers.get_tokenizer(cfg(kind="wordpiece"))
    with pytest.raises(ValueError, match="vocab_size"):
        tokenizers.get_tokenizer(cfg(vocab_size=100))  # bytes need 259


def test_multilingual_sentencepiece_with_byte_fallback(tmp_path):
    config = [c for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS
              if c.name == "tiny_multilingual"][0]
    texts = [t for i in range(300)
             for t in shapes_builder.generate_example(config, "train", i)["captions"] if t]
    with_bytes = tokenizers.train_sentencepiece(texts, str(tmp_path / "b.model"), 1024,
                                                byte_fallback=True)
    without = tokenizers.train_sentencepiece(texts, str(tmp_path / "n.model"), 1024)
    unk = 3
    for text in ("一颗黄色的星星", "маленькая красная звезда", "小さい赤い円がある。"):
        assert with_bytes.decode(with_bytes.encode(text, 32)[0]) == text  # scripts of training
    unseen = "نجمة حمراء 🙂"  # Arabic and an emoji: no training caption has them
    ids = with_bytes.encode(unseen, 64)[0]
    assert unk not in ids and with_bytes.decode(ids) == unseen  # their UTF-8 bytes, exactly
    assert with_bytes._sp.is_byte(int(ids[2]))
    assert unk in without.encode(unseen, 64)[0]  # without byte fallback: unknown
    with pytest.raises(ValueError, match="256 bytes"):
        tokenizers.train_sentencepiece(texts, str(tmp_path / "c.model"), 200, byte_fallback=True)


def test_byte_fallback_field_is_checked():
    def cfg(kind="sentencepiece", **kw):
        return ml_collections.ConfigDict(dict(kind=kind, path="", vocab_size=512, max_len=16,
                                              **kw))

    tokenizers.check_config(cfg(byte_fallback=True))
    with pytest.raises(ValueError, match="True or False"):
        tokenizers.check_config(cfg(byte_fallback="yes"))
    with pytest.raises(ValueError, match="kind='sentencepiece'"):
        tokenizers.check_config(cfg(kind="bytes", byte_fallback=True))
