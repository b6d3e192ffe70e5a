"""ClipBpeTokenizer gives the same ids as Hugging Face's CLIPTokenizer on the same files.

The vocabulary and merges are learnt in the test by a few rounds of BPE over a small mixed-
script corpus and written in both formats (vocab.json + merges.txt, OpenAI's .gz).
"""

import collections
import gzip
import json
import random
import unicodedata

import numpy as np
import pytest

from multimodal_jax.data import clip_bpe

transformers = pytest.importorskip("transformers")
# In transformers 5 CLIPTokenizer is the tokenizers-backed one; in 4.x that one is ...Fast.
HFTokenizer = getattr(transformers, "CLIPTokenizerFast", transformers.CLIPTokenizer)

CORPUS = ("a photo of a red circle. a picture of two blue squares, it's the cat's toy! "
          "the quick brown fox jumps over the lazy dog 12345 café naïve οδος 日本語 テスト 😀😀 ")
MAX_LEN = 40
TEXTS = [
    "a photo of a red circle.", "  A  Photo\tOF\n a  RED   circle  ",
    "it's the cat's toy!! don't we'll I'M", "12345 67.89 ½ ² ٣ Ⅻ ①", "café naïve cafe\u0301",
    "ΟΔΟΣ οδος", "日本語 テスト", "emoji 😀😀 ✨", "x\x1cy\u00a0z\u2003w\u180ev \u200bzw",
    "İstanbul ǅ ß ﬁ", "a_b-c--d__e", "", " ", "hello " * 30, "a'sb 're'll",
    "<|endoftext|> mid <|startoftext|>x", "<|ENDOFTEXT|>!", "!<|endoftext|>", "tab\tnl\r\nend",
]
FUZZ_POOL = list("abcXYZ '!?.,<|>-_0123456789\t\n") + [
    "<|endoftext|>", "<|ENDOFTEXT|>", "<|startoftext|>", "'s", "'LL", "é", "e\u0301", "Σ", "ß",
    "ﬁ", "½", "²", "٣", "Ⅻ", "😀", "日", "\u00a0", "\u2003", "\x1c", "\u180e", "\u200b", "ǅ",
    "İ", "\u0345", "ẞ", "ᾼ", "\u0f0b"]


def learn_merges(corpus: str, rounds: int) -> list[tuple[str, str]]:
    """A few rounds of byte-level BPE training on ``corpus`` (CLIP's pre-tokenisation)."""
    byte_chars = clip_bpe.bytes_to_unicode()
    words = collections.Counter()
    for word in clip_bpe.word_pattern().findall(clip_bpe.normalize(corpus)):
        chars = "".join(byte_chars[b] for b in word.encode("utf-8"))
        words[tuple(chars[:-1]) + (chars[-1] + "</w>",)] += 1
    merges = []
    for _ in range(rounds):
        pairs = collections.Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        words = collections.Counter({_merge(word, best): c for word, c in words.items()})
    return merges


def _merge(word, pair):
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory with vocab.json + merges.txt and an OpenAI-style .gz of the same merges."""
    path = tmp_path_factory.mktemp("clip_bpe")
    merges = learn_merges(CORPUS * 3, rounds=120)
    tokens = list(clip_bpe.bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    lines = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text(lines, encoding="utf-8")
    with gzip.open(path / "bpe_simple_vocab_16e6.txt.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    return path


@pytest.fixture(scope="module")
def tokenizers(files):
    return HFTokenizer.from_pretrained(str(files)), clip_bpe.ClipBpeTokenizer(str(files))


def hf_ids(hf, text, max_len=MAX_LEN):
    return hf(text, padding="max_length", truncation=True, max_length=max_len)["input_ids"]


def test_special_ids_and_sizes(tokenizers):
    hf, ours = tokenizers
    assert (ours.bos_id, ours.eos_id, ours.pad_id) == (hf.bos_token_id, hf.eos_token_id,
                                                        hf.pad_token_id)
    assert ours.vocab_size == len(hf)


def test_same_ids_as_hf(tokenizers):
    hf, ours = tokenizers
    got = ours.encode(TEXTS, MAX_LEN)
    assert got.dtype == np.int32 and got.shape == (len(TEXTS), MAX_LEN)
    for text, row in zip(TEXTS, got):
        assert row.tolist() == hf_ids(hf, text), repr(text)


def test_same_ids_on_random_strings(tokenizers):
    hf, ours = tokenizers
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(0, 15)))
        assert ours.encode([text], MAX_LEN)[0].tolist() == hf_ids(hf, text), repr(text)


def test_same_ids_on_random_unicode(tokenizers):
    """Any code point assigned in this Python's Unicode tables (newer ones may differ)."""
    hf, ours = tokenizers
    rng = random.Random(1)
    for _ in range(200):
        cps = [rng.randint(32, 0x2FFFF) for _ in range(rng.randint(1, 6))]
        text = "".join(chr(c) for c in cps if unicodedata.category(chr(c)) not in ("Cn", "Cs"))
        assert ours.encode([text], 64)[0].tolist() == hf_ids(hf, text, 64), repr(text)


def test_openai_gz_gives_same_ids(files, tokenizers):
    _, ours = tokenizers
    gz = clip_bpe.ClipBpeTokenizer(str(files / "bpe_simple_vocab_16e6.txt.gz"))
    np.testing.assert_array_equal(gz.encode(TEXTS, MAX_LEN), ours.encode(TEXTS, MAX_LEN))


def test_truncation_keeps_eos_and_pad_id(tokenizers, files):
    _, ours = tokenizers
    row = ours.encode("word " * 50, 8)[0]  # one str is a batch of one
    assert row[0] == ours.bos_id and row[-1] == ours.eos_id and ours.eos_id not in row[1:-1]
    open_clip_style = clip_bpe.ClipBpeTokenizer(str(files), max_len=6, pad_id=0)
    assert open_clip_style.encode(["a"]).shape == (1, 6)
    assert open_clip_style.encode(["a"])[0, -1] == 0


def test_decode_round_trip(tokenizers):
    hf, ours = tokenizers
    for text in ["a photo of a red circle.", "it's the cat's toy!", "café 日本語 😀"]:
        ids = ours.encode([text], MAX_LEN)[0]
        assert ours.decode(ids) == hf.decode(ids.tolist(), skip_special_tokens=True)
    assert ours.decode(ours.encode(["a photo", "a cat"], MAX_LEN)) == ["a photo", "a cat"]


def test_tf_encode_matches_encode(tokenizers):
    tf = pytest.importorskip("tensorflow")
    _, ours = tokenizers
    ds = tf.data.Dataset.from_tensor_slices(TEXTS[:4]).map(lambda t: ours.tf_encode(t, MAX_LEN))
    got = np.stack([x.numpy() for x in ds])
    np.testing.assert_array_equal(got, ours.encode(TEXTS[:4], MAX_LEN))


def test_missing_files_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        clip_bpe.ClipBpeTokenizer(str(tmp_path))


def test_reads_tokenizer_json_saved_by_hf(tokenizers, tmp_path):
    """transformers 5 saves only tokenizer.json; the same vocabulary and merges come back."""
    hf, ours = tokenizers
    hf.save_pretrained(str(tmp_path))
    if not (tmp_path / "tokenizer.json").exists():
        pytest.skip("this transformers version does not write tokenizer.json")
    from_json = clip_bpe.ClipBpeTokenizer(str(tmp_path / "tokenizer.json"))
    np.testing.assert_array_equal(from_json.encode(TEXTS, MAX_LEN), ours.encode(TEXTS, MAX_LEN))
