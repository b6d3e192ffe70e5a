"""Reference: CLIP ViT-B/16 (image 224 px, 12-layer 512-wide text Transformer, 77 tokens)
trained from scratch on an image-text TFDS dataset you have prepared. For a TPU pod slice or
a multi-GPU node; not for this CPU.

Data: ``coco_captions`` as written (``tfds build coco_captions --data_dir=$DATA``; one of its
five captions is picked per example and step); point ``config.data`` at your own image-text
TFDS dataset (``name``, ``image_key``, ``text_key``) for a web-scale run. Tokenizer: OpenAI's
BPE vocabulary file (``bpe_simple_vocab_16e6.txt.gz``) at ``config.tokenizer.path``.

Run (the same command on every host of a TPU slice; on a GPU node, one process; see README):
  python -m train --config configs/clip_vit_b16.py --workdir /mnt/shared/clip_b16 \
      --config.data.data_dir=$DATA --config.tokenizer.path=$BPE
Evaluate: python -m train.evaluate --config configs/clip_vit_b16.py --workdir ... (same flags)

Scale (memory and FLOPs: the TPU compiler's, libtpu 0.0.42.1, on a CPU host; not run on chips):
- Global batch 4096 over all devices, e.g. 128 per chip on a v4-64 slice (32 chips) or 512 per
  GPU on 8x H100; the loss sees all 4096 (all-gathered embeddings). CLIP's paper used 32768:
  raise ``batch_size`` with the slice, or ``accum_steps`` (whose negatives are then the
  micro-batch only, see ``multimodal_jax/parallel/accumulate.py``).
- Sharding: data parallel, state replicated (149.6 M parameters fit everywhere). For larger
  towers FSDP is one line: ``config.parallel.fsdp = 4`` with ``rules = FSDP_RULES`` (see
  ``configs/siglip_vit_b16.py``).
- Precision: bfloat16 compute, float32 parameters and Adam moments; remat ``dots_saveable``
  per block (matmul outputs kept, the rest recomputed in the backward pass).
- Compiled for v5e:4x4 at 128 examples per chip (``--config.batch_size=2048``): 10.89 GiB per
  chip of 15.75 (state 1.74 GiB of arguments, 8.70 GiB of temporaries), 15.90 TFLOP per chip per
  step (analytic 15.78), roofline 190 ms, MFU at most 42%. The largest batch per chip that fits a
  v5e chip: 208 with ``dots_saveable``, 392 with ``nothing_saveable``; at 512 the step needs
  33.12 GiB. The default 4096 is 128 per chip on 32 chips (e.g. v4-64, or a 32-chip v5e slice).
    python -m train.compile --config configs/clip_vit_b16.py --topology v5e:4x4 \
      --config.batch_size=2048 [--fit]
  On 8 H100s (``--topology h100:8``, compile-only): 11.98 GiB per GPU at 128 per GPU.
- MFU is logged every ``log_every_steps`` against ``config.parallel.peak_tflops`` (per chip,
  bfloat16 dense: 275 for TPU v4, 197 v5e, 459 v5p, 989 H100/H200, 312 A100). The analytic
  count is 123.3 GFLOPs per example (3 x forward), plus the loss's similarities.
"""

import ml_collections

from multimodal_jax.configs import clip_shapes

FSDP_RULES = ((".*", "fsdp"),)  # every array: its largest dimension split over "fsdp"


def get_config() -> ml_collections.ConfigDict:
    config = clip_shapes.get_config()
    config.loss = "softmax"
    config.batch_size = 4096
    config.total_steps = 100_000
    config.log_every_steps = 100
    config.eval_every_steps = config.checkpoint_every_steps = 5_000
    config.keep_checkpoints = 3

    config.data.update(
        name="coco_captions", data_dir="", train_split="train", image_key="image",
        text_key="captions/text", label_key="", image_size=224,
        mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
        shuffle_buffer=50_000, flip=False)
    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="clip_bpe", path="", vocab_size=49408, max_len=77))

    config.model = ml_collections.ConfigDict(dict(
        embed_dim=512, dtype="bfloat16",
        image=dict(variant="B/16", pool="tok", posemb="learn", pre_norm=True, patch_bias=False,
                   act="quick_gelu", ln_eps=1e-5, remat_policy="dots_saveable"),  # as OpenAI's
        text=dict(width=512, depth=12, mlp_dim=2048, num_heads=8, max_len=77, causal=True,
                  pool="eos", act="quick_gelu", ln_eps=1e-5, remat_policy="dots_saveable")))

    config.optim.update(lr=5e-4, warmup_steps=2_000, b1=0.9, b2=0.98, eps=1e-6,
                        weight_decay=0.2, grad_clip_norm=1.0, mu_dtype=None)

    config.parallel = ml_collections.ConfigDict(dict(
        driver="mesh", fsdp=1, rules=(), logical_axes={}, peak_tflops=275.0))

    config.evaluation.update(
        batch_size=1024, zeroshot_splits=(), zeroshot_filter=(), class_names="",
        retrieval_split="val", retrieval_examples=5000, retrieval_same_text_matches=False)
    return config
