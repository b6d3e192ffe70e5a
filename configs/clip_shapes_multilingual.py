"""One CLIP for seven languages on the built-in dataset's multilingual variant, CPU minutes.

Run:
  python -m train --config configs/clip_shapes_multilingual.py --workdir workdirs/clip_multilingual
Evaluate the latest checkpoint:
  python -m train.evaluate --config configs/clip_shapes_multilingual.py \\
      --workdir workdirs/clip_multilingual

``captioned_shapes/32px_multilingual`` has the main job's images with parallel captions in
English, German, French, Spanish, Russian, Chinese and Japanese; each training example is seen
with one of its captions, drawn at random per epoch. One SentencePiece model (BPE with byte
fallback) is trained on all the languages' captions into the workdir. In Chinese, half of the
(shape, colour) pairs never appear in the training captions (``XFER_PAIRS``): the other
languages carry them. The same model as ``clip_shapes.py``, trained for 600 steps instead of
400: with one caption in seven languages per image, the words of each language are seen a
seventh as often (at 400 steps zero-shot reached 64%, limited by shapes, not by any language).

Metrics (``evaluation/multilingual.py``): ``zeroshot/test/<lang>/top1`` per language,
``zeroshot/xfer/zh/top1`` (Chinese on the pairs it never saw), the cross-lingual retrieval
table ``retrieval/test/<a>_to_<b>/r1`` (also ``pictures/*_cross_lingual_test.{json,png}``).
Measured: the README's "Many languages, one model".
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.data.shapes_languages import CODES


def get_config() -> ml_collections.ConfigDict:
    config = clip_shapes.get_config()
    config.data.name = "captioned_shapes/32px_multilingual"
    config.data.text_key = "captions"  # one caption per language; "" (withheld) is never drawn
    config.tokenizer.update(vocab_size=2048, max_len=24, byte_fallback=True)
    config.model.text.max_len = 24
    config.total_steps = 600  # seven languages' words to learn: 400 steps reach ~64%
    config.eval_every_steps = config.checkpoint_every_steps = 300
    config.evaluation.languages = CODES
    config.evaluation.explain.split = "test"  # the pointing game of its relevance maps
    return config
