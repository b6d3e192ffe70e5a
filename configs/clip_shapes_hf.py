"""CLIP on the built-in captioned-shapes dataset, built only from parts Hugging Face's
``CLIPModel`` has, so that the run exports to a transformers folder (and to open_clip):

  python -m train --config configs/clip_shapes_hf.py --workdir workdirs/clip_shapes_hf
  python -m train.export --workdir workdirs/clip_shapes_hf --format hf --out exports/clip_shapes_hf
  python -m train.export --workdir workdirs/clip_shapes_hf --format open_clip --out exports/clip_shapes_oc

The main job (configs/clip_shapes.py) with the differences CLIPModel needs: the image tower
pools the class token (not a MAP head), normalises its embeddings before the encoder (ln_pre)
and has no patch-embedding bias; LayerNorm epsilon 1e-5 in both towers (CLIP's, and open_clip's
only one); the tokenizer is CLIP's byte-level BPE, its vocabulary learnt from the training
captions into WORKDIR/clip_bpe/ (CLIPTokenizer reads it) instead of SentencePiece. Sizes, loss,
steps and optimiser are the main job's. Measured on a 2-core CPU (README, "Your images"):
zero-shot top-1 98.4% on the test split and 83.8% on the held-out compositions (the main job:
96.1% / 67.5%), retrieval R@1 40.1% / 37.7%; the exported CLIPModel, with its own processor and
tokenizer in PyTorch, predicts the same class for every one of 1000 test images.
"""

import ml_collections

from multimodal_jax.configs import clip_shapes


def get_config() -> ml_collections.ConfigDict:
    config = clip_shapes.get_config()
    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="clip_bpe", path="", vocab_size=1024, max_len=16))  # bytes, merges, 2 specials
    config.model.image.update(pool="tok", pre_norm=True, patch_bias=False, final_norm=True,
                              ln_eps=1e-5)
    config.model.text.update(pool="eos", causal=True, ln_eps=1e-5)
    return config
