"""BLEU-4 and CIDEr-D against values worked out by hand, and the attribute read-back of
generated captions on the built-in dataset."""

import math

import numpy as np
import pytest

from multimodal_jax.evaluation import caption_attributes
from multimodal_jax.evaluation import caption_metrics
from multimodal_jax.evaluation.captioning_eval import fix_articles


def test_bleu4_by_hand():
    # Candidate 1 (6 words) matches "a red circle on the left side" in every n-gram: 6/6, 5/5,
    # 4/4, 3/3; closest reference length 6. Candidate 2 "a blue square" (3 words): unigrams 3/3,
    # bigrams 2/2 ("a blue" from one reference, "blue square" from the other), trigram 0/1, no
    # 4-grams; both references have 4 words. Corpus: p = 9/9, 7/7, 4/5, 3/3; c = 9, r = 10.
    candidates = ["A red circle on the left.", "a blue square"]
    references = [["a red circle on the left side", "a crimson disc on the left"],
                  ["a small blue square", "a blue box shape"]]
    want = math.exp(1 - 10 / 9) * (4 / 5) ** 0.25
    assert caption_metrics.bleu(candidates, references) == pytest.approx(want, rel=1e-12)


def test_bleu_clips_repeated_words_and_is_zero_without_a_4gram():
    # "the the the the" vs "the cat": "the" counts once: p1 = 1/4; c = 4 >= r = 2, no penalty.
    assert caption_metrics.bleu(["the the the the"], [["the cat"]], max_n=1) == pytest.approx(0.25)
    assert caption_metrics.bleu(["the cat sat on the mat"],
                                [["the cat is on the mat", "there is a cat on the mat"]]) == 0.0
    assert caption_metrics.bleu(["a b c d"], [["a b c d"]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reference"):
        caption_metrics.bleu(["a"], [[]])


def test_cider_d_by_hand():
    # Three images, so idf = log(3) - log(df). "x" is in two images' references (df 2), every
    # other n-gram in one. L = log 3, D = log 3 - log 2. Length = number of bigrams.
    candidates = ["x y", "x", "q"]
    references = [["x y z"], ["x w"], ["r"]]
    big, small = math.log(3), math.log(3) - math.log(2)
    penalty = math.exp(-1 / 72)  # length difference 1, sigma 6
    # Image 1: unigram vectors (D, L) vs (D, L, L); bigrams (L) vs (L, L); no 3-, 4-grams.
    uni1 = (small ** 2 + big ** 2) / (math.sqrt(small ** 2 + big ** 2)
                                      * math.sqrt(small ** 2 + 2 * big ** 2))
    image1 = 10 * penalty * (uni1 + 1 / math.sqrt(2)) / 4
    # Image 2: unigrams (D) vs (D, L); the candidate has no bigram, the reference one.
    image2 = 10 * penalty * (small / math.sqrt(small ** 2 + big ** 2)) / 4
    scores = caption_metrics.cider_scores(candidates, references)
    np.testing.assert_allclose(scores, [image1, image2, 0.0], rtol=1e-12)
    assert caption_metrics.cider(candidates, references) == pytest.approx((image1 + image2) / 3)


def test_cider_d_perfect_match_with_two_references():
    # Image 1 "a b" equals its one reference: cosine 1 for unigrams and bigrams, 0 for 3-, 4-
    # grams (none): 10 * (1 + 1 + 0 + 0) / 4 = 5. Image 2 shares nothing with its reference.
    assert caption_metrics.cider_scores(["a b", "c"], [["a b"], ["d"]]) == pytest.approx([5.0, 0.0])


def test_reading_attributes_back():
    judge = caption_attributes.judge
    red_circle = [("circle", "red")]
    verdict = judge("a small crimson disc on the left side.", red_circle, "small", "left")
    assert verdict == {"shape": True, "color": True, "shape_color": True, "size": True,
                       "position": True, "all": True}
    verdict = judge("a big red circle in the middle.", red_circle, "small", "left")
    assert verdict["shape_color"] and verdict["size"] is False and verdict["position"] is False
    assert not verdict["all"]
    assert judge("a red circle.", red_circle, "small", "left")["all"]  # nothing else stated
    assert judge("a blue circle", red_circle, "small", "left")["color"] is False
    twice = judge("a red circle and a red circle", red_circle, "small", "left")
    assert twice["shape_color"] is False
    pair = [("circle", "red"), ("square", "blue")]
    swapped = judge("a cobalt box to the left of a red disc.", pair, "small", "right")
    assert swapped["shape_color"] and swapped["all"] and swapped["position"] is None
    assert caption_attributes.read_position("in the upper half there is a star") == "top"


def test_attribute_metrics_columns():
    # label = shape * 8 + colour: 0 = red circle, 10 = blue square; size 1 = large,
    # position 1 = left.
    labels = [[0, -1, 1, 1, 1], [0, 10, 0, 2, 2], [0, -1, 0, 0, 1]]
    captions = ["a large red circle on the left", "a blue square right of a red circle",
                "a green circle"]
    metrics = caption_attributes.attribute_metrics(captions, labels)
    assert metrics["attr_acc_shape_color"] == pytest.approx(2 / 3)
    assert metrics["attr_acc_shape"] == 1.0 and metrics["attr_acc_color"] == pytest.approx(2 / 3)
    assert metrics["attr_acc_shape_color_1obj"] == 0.5
    assert metrics["attr_acc_shape_color_2obj"] == 1.0
    assert metrics["size_stated"] == 0.5 and metrics["attr_acc_size"] == 1.0
    assert metrics["attr_acc_all"] == pytest.approx(2 / 3)


def test_prompt_articles():
    assert fix_articles("a orange ring.") == "an orange ring."
    assert fix_articles("a photo of a red star.") == "a photo of a red star."
