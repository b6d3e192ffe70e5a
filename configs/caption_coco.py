"""Reference config (not run here): captioning on COCO Captions with a CLIP B/16 image tower,
CapPa-style, on an accelerator pod.

Prepare the dataset once where its files are (nothing is downloaded at run time):
  tfds build coco_captions --data_dir=DATA --file_format=tfrecord
Run:
  python -m train --config configs/caption_coco.py --workdir workdirs/caption_coco \
      --config.data.data_dir=DATA --config.init_from=hf_clip:/path/to/clip-vit-base-patch16
Evaluate (BLEU-4 and CIDEr-D on the Karpathy val split against all five references):
  python -m train.evaluate --config configs/caption_coco.py --workdir workdirs/caption_coco \
      --config.data.data_dir=DATA

A ViT-B/16 at 224 px (the published CLIP vision tower's architecture: class token, ln_pre,
quick_gelu, no patch bias) tuned with the decoder, a 6-layer width-768 decoder, SentencePiece
(32k) trained on the captions, bfloat16 compute, beam search 4 for evaluation. No figure is
claimed for it: it is the shape of a real run, checked by the config tests only. Compiled
for v5e:4x4 by the TPU compiler on a CPU host (libtpu 0.0.42.1; ``python -m train.compile
--config configs/caption_coco.py --topology v5e:4x4``): 4.65 GiB per chip at 32 examples per
chip, 4.42 TFLOP per step, roofline 88 ms; the beam-search decode of evaluation 12.14 GiB.
"""

import ml_collections

from multimodal_jax.configs import caption_shapes


def get_config() -> ml_collections.ConfigDict:
    config = caption_shapes.get_config()
    config.total_steps = 40_000
    config.batch_size = 512
    config.log_every_steps = 100
    config.eval_every_steps = 5_000
    config.checkpoint_every_steps = 1_000
    config.keep_checkpoints = 3
    config.prerequisites = ml_collections.ConfigDict()  # the tower comes from init_from
    config.init_from = ""  # e.g. "hf_clip:/path/to/clip-vit-base-patch16"
    config.lock_image_tower = False
    config.parallel_prediction = 0.0  # CapPa: 0.75

    config.data = ml_collections.ConfigDict(dict(
        name="coco_captions", data_dir="", train_split="train+restval", image_key="image",
        text_key="captions/text", label_key="", image_size=224,
        mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
        shuffle_buffer=50_000, flip=False, augment="inception_crop", crop_area_min=0.5))

    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece", path="", vocab_size=32_000, max_len=48))

    config.model = ml_collections.ConfigDict(dict(
        dtype="bfloat16", pooled_token=False,
        image=dict(variant="B/16", pool="tok", pre_norm=True, patch_bias=False, act="quick_gelu",
                   ln_eps=1e-5, remat_policy="dots_with_no_batch_dims_saveable"),
        decoder=dict(width=768, depth=6, mlp_dim=3072, num_heads=12, max_len=48, act="gelu",
                     ln_eps=1e-6)))

    config.optim.lr = 5e-4
    config.optim.warmup_steps = 2_000
    config.optim.weight_decay = 0.05

    config.decoding.update(method="beam", beam_size=4, length_penalty=0.6)

    config.evaluation = ml_collections.ConfigDict(dict(
        batch_size=512, splits=("val",), attributes="none", zeroshot_splits=(),
        zeroshot_filter=(), class_names="builtin", templates=("a photo of a {}.",),
        fix_articles=True, zeroshot_chunk=16))
    return config
