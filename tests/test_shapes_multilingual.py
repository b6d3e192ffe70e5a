"""The built-in dataset's multilingual variant: the existing configs unchanged bit for bit,
parallel captions in seven languages with their grammar, and the transfer split."""

import hashlib
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from multimodal_jax.data import shapes_builder as B
from multimodal_jax.data import shapes_multilingual as M
from multimodal_jax.data.shapes_languages import CODES
from multimodal_jax.data.shapes_languages import LANGUAGES
from multimodal_jax.data.shapes_languages import de
from multimodal_jax.data.shapes_languages import en
from multimodal_jax.data.shapes_languages import es
from multimodal_jax.data.shapes_languages import fr
from multimodal_jax.data.shapes_languages import ja
from multimodal_jax.data.shapes_languages import ru
from multimodal_jax.data.shapes_languages import zh

CONFIGS = {c.name: c for c in B.CaptionedShapes.BUILDER_CONFIGS}
ML = CONFIGS["tiny_multilingual"]

# sha256 of the first 24 examples of every split (every field and the PNG bytes), and of the
# whole prepared ``tiny`` dataset as read back, computed with the code before the multilingual
# variant existed (commit 18a7257): the main job's data must not move.
GOLDEN_EXAMPLES = {
    "32px": "8a1d4d19f3867465ed1639322508f0c6e95966b9c7ee0cf9351d43f1aa551053",
    "64px": "d4f6c091690bf853968fa29d134fb89de7d2683071da875ea22fdc7986fd9c81",
    "32px_textured": "aec0650f0e4f42cd759b0c5f6ab3eaacb63cb074438f501c4755d0247ec96f27",
    "tiny": "8a1d4d19f3867465ed1639322508f0c6e95966b9c7ee0cf9351d43f1aa551053",
}
GOLDEN_TINY_DATASET = {
    "train": "34492076aa5f86c7739f37c236dd87efef2ccc941d106b00343cb8f1642a47b7",
    "test": "c604ace1196bf48a879bc7ed2b9442a638f2c4c31beaa5b65e968bc0b00377ce",
    "heldout": "e596d4202ffaf1da4899d189314b765ec2365eeebf1ddd1136f1813ba1cdb214",
}


def _update(digest, key: str, value) -> None:
    digest.update(key.encode())
    digest.update(value.encode() if isinstance(value, str) else np.asarray(value).tobytes())


@pytest.mark.parametrize("name", sorted(GOLDEN_EXAMPLES))
def test_existing_configs_generate_bitwise_the_same_examples(name):
    digest = hashlib.sha256()
    for split in B.SPLITS:
        for index in range(24):
            example = B.generate_example(CONFIGS[name], split, index)
            for key in sorted(example):
                _update(digest, key, example[key])
            digest.update(B._png(example["image"]))
    assert digest.hexdigest() == GOLDEN_EXAMPLES[name]


def test_prepared_tiny_dataset_is_bitwise_the_same(shapes_data_dir):
    builder = tfds.builder("captioned_shapes/tiny", data_dir=shapes_data_dir)
    assert "captions" not in builder.info.features and "gloss" not in builder.info.features
    for split, expected in GOLDEN_TINY_DATASET.items():
        digest = hashlib.sha256()
        for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
            for key in sorted(example):
                _update(digest, key, example[key])
        assert digest.hexdigest() == expected, split


@pytest.fixture(scope="module")
def examples():
    """The first 160 examples of each split of tiny_multilingual."""
    return {split: [B.generate_example(ML, split, i) for i in range(160)] for split in B.SPLITS}


def test_same_images_and_labels_as_the_english_config(examples):
    for split in B.SPLITS:
        for index in (0, 5, 77):
            english = B.generate_example(CONFIGS["tiny"], split, index)
            ours = examples[split][index]
            np.testing.assert_array_equal(ours["image"], english["image"])
            for key in ("label", "shape", "color", "size", "position", "relation", "label2"):
                assert ours[key] == english[key], key
            assert ours["caption"] == ours["captions"][0] and ML.languages[0] == "en"


def test_every_language_captions_every_example_but_the_transfer_split(examples):
    assert ML.languages == CODES == ("en", "de", "fr", "es", "ru", "zh", "ja")
    zh_column = ML.languages.index("zh")
    withheld = 0
    for split in B.SPLITS:
        for ex in examples[split]:
            assert len(ex["captions"]) == len(CODES)
            pairs = {(ex["shape"], ex["color"])}
            if ex["num_objects"] == 2:
                pairs.add((B.SHAPES[ex["shape2"]], B.COLORS[ex["color2"]]))
            hides = split == "train" and bool(pairs & B.XFER_PAIRS)
            withheld += hides
            for column, text in enumerate(ex["captions"]):
                assert (text == "") == (hides and column == zh_column), (split, column, text)
    assert 0.3 * 160 < withheld < 0.8 * 160  # about half of the single objects, more of pairs


def test_transfer_pairs_are_half_of_the_training_pairs():
    pairs = B.XFER_PAIRS
    assert len(pairs) == len(B.TRAIN_PAIRS) // 2 == 28
    assert pairs <= set(B.TRAIN_PAIRS)
    for shape in B.SHAPES:
        assert 3 <= sum(s == shape for s, _ in pairs) <= 4
    for color in B.COLORS:
        assert 3 <= sum(c == color for _, c in pairs) <= 4


def test_captions_are_translations_with_their_own_streams():
    content = M.Content(("star", "red"), size="small", position="left")
    all_languages = M.captions((0, 0, 3), CODES, content)
    assert all_languages == M.captions((0, 0, 3), CODES, content)  # deterministic
    assert M.captions((0, 0, 3), ("de",), content) == (all_languages[1],)  # own stream
    assert M.captions((0, 0, 4), CODES, content) != all_languages
    assert content.gloss() == "small red star, left"
    pair = M.Content(("circle", "blue"), ("ring", "white"), "above")
    assert pair.gloss() == "blue circle above white ring"


def _mentions(code: str, caption: str, shape: str, color: str) -> bool:
    """Whether ``caption`` names the shape and the colour with one of the language's words."""
    module = LANGUAGES[code]
    if code == "en":
        return (any(re.search(rf"\b{w}\b", caption) for w in module.C.SHAPE_WORDS[shape])
                and any(re.search(rf"\b{w}\b", caption) for w in module.C.COLOR_WORDS[color]))
    nouns = [n if isinstance(n, str) else n[0] for n in module.SHAPE_WORDS[shape]]
    colors = [c if isinstance(c, str) else c[0] for c in module.COLOR_WORDS[color]]
    if code == "ru":  # declined: match the stem
        nouns, colors = [n[:-1] if n[-1] in "аоя" else n for n in nouns], [c[:-2] for c in colors]
    if code in ("fr", "es"):  # either gender's form
        colors = [form for pair in module.COLOR_WORDS[color] for form in pair]
    return any(n in caption for n in nouns) and any(c in caption for c in colors)


def test_captions_name_their_objects_in_every_language(examples):
    for ex in examples["test"]:
        first = (ex["shape"], ex["color"])  # generate_example gives names
        for code, caption in zip(CODES, ex["captions"]):
            assert _mentions(code, caption, *first), (code, caption)
            if ex["num_objects"] == 2:
                assert _mentions(code, caption, B.SHAPES[ex["shape2"]], B.COLORS[ex["color2"]])


def test_zeroshot_prompts_are_in_distribution():
    for code, module in LANGUAGES.items():
        if code != "en":
            assert set(module.PROMPTS) <= set(module.SINGLE_TEMPLATES), code
        prompts = M.zeroshot_prompts(code)
        assert len(prompts) == 64 and len({len(p) for p in prompts}) == 1
        assert len({p[0] for p in prompts}) == 64, code  # every class worded differently


# --- the grammar, against forms written out by hand ------------------------------------------

def test_english_articles():
    assert en.zeroshot_prompts("ring", "orange")[1] == "a photo of an orange ring."
    assert en.zeroshot_prompts("circle", "red")[0] == "a red circle."


def test_german_gender_and_case():
    assert de.noun_phrase("Kreis", "m", ("klein", "rot"), "nom") == "ein kleiner roter Kreis"
    assert de.noun_phrase("Kreis", "m", ("rot",), "acc") == "einen roten Kreis"
    assert de.noun_phrase("Raute", "f", ("rot",), "dat") == "einer roten Raute"
    assert de.noun_phrase("Quadrat", "n", ("groß", "weiß"), "nom") == "ein großes weißes Quadrat"
    assert de.noun_phrase("Kreuz", "n", ("cyanfarben",), "dat") == "einem cyanfarbenen Kreuz"
    assert de.zeroshot_prompts("star", "orange")[5] == "das Bild zeigt einen orangefarbenen Stern."


def test_french_and_spanish_agreement():
    assert fr.noun_phrase("étoile", "f", ("vert", "verte"), ("petit", "petite")) == \
        "une petite étoile verte"
    assert fr.noun_phrase("cercle", "m", ("blanc", "blanche")) == "un cercle blanc"
    assert fr.zeroshot_prompts("cross", "white")[1] == "une photo d'une croix blanche."
    assert es.noun_phrase("estrella", "f", ("rojo", "roja"), ("pequeño", "pequeña")) == \
        "una pequeña estrella roja"
    assert es.zeroshot_prompts("crescent", "yellow")[1] == "una foto de una media luna amarilla."
    assert es.zeroshot_prompts("square", "orange")[0] == "un cuadrado naranja."


@pytest.mark.parametrize("adjective,forms", [
    # m nom, f nom, n nom, m gen, f gen, m ins, f ins
    ("красный", ("красный", "красная", "красное", "красного", "красной", "красным", "красной")),
    ("синий", ("синий", "синяя", "синее", "синего", "синей", "синим", "синей")),
    ("голубой", ("голубой", "голубая", "голубое", "голубого", "голубой", "голубым", "голубой")),
    ("маленький", ("маленький", "маленькая", "маленькое", "маленького", "маленькой",
                   "маленьким", "маленькой")),
    ("большой", ("большой", "большая", "большое", "большого", "большой", "большим", "большой")),
])
def test_russian_declension(adjective, forms):
    got = (ru.decline(adjective, "m", "nom"), ru.decline(adjective, "f", "nom"),
           ru.decline(adjective, "n", "nom"), ru.decline(adjective, "m", "gen"),
           ru.decline(adjective, "f", "gen"), ru.decline(adjective, "m", "ins"),
           ru.decline(adjective, "f", "ins"))
    assert got == forms


def test_russian_phrases_agree():
    star = ru.SHAPE_WORDS["star"][0]
    assert ru.noun_phrase(star, ("маленький", "красный"), "ins") == "маленькой красной звездой"
    assert ru.zeroshot_prompts("ring", "blue")[5] == "на картинке видно синее кольцо."
    assert ru.zeroshot_prompts("circle", "green")[1] == "фотография зелёного круга."
    rng = np.random.default_rng(0)
    captions = {ru.pair_caption(rng, ("star", "red"), ("square", "blue"), "left of")
                for _ in range(60)}
    assert "красная звезда слева от синего квадрата." in captions
    assert any("справа от неё" in c for c in captions)  # the pronoun agrees with звезда


def test_chinese_measure_words_and_japanese_order():
    assert zh.noun_phrases("星星", "颗", "黄色")["np"] == "一颗黄色的星星"
    assert zh.noun_phrases("圆形", "个", "红色", "小")["np"] == "一个红色的小圆形"
    assert zh.noun_phrases("圆形", "个", "红色", "很大的")["np"] == "一个很大的红色圆形"
    assert zh.noun_phrases("新月", "弯", "白色", de=False)["np"] == "一弯白色新月"
    assert zh.zeroshot_prompts("square", "blue")[1] == "一张蓝色正方形的照片。"
    assert ja.noun_phrase("円", "赤い", "小さい") == "小さい赤い円"
    assert ja.zeroshot_prompts("star", "green")[1] == "緑の星の写真。"
    rng = np.random.default_rng(0)
    captions = {ja.pair_caption(rng, ("circle", "red"), ("square", "blue"), "left of")
                for _ in range(400)}
    assert "赤い円が青い正方形の左にある。" in captions
    assert "青い正方形の左に赤い円がある。" in captions
