"""Reference: SigLIP ViT-B/16 (sigmoid loss, chunked) at a global batch of 32k, FSDP-sharded,
on an image-text TFDS dataset you have prepared. For a TPU pod slice; not for this CPU.

Data as in ``configs/clip_vit_b16.py`` (``coco_captions`` as written; your own image-text TFDS
dataset for a real run). Tokenizer: a 32k SentencePiece model at ``config.tokenizer.path``
(or leave it empty to train one on the training captions, as the built-in dataset does).

Run (the same command on every host of the slice; see README):
  python -m train --config configs/siglip_vit_b16.py --workdir /mnt/shared/siglip_b16 \
      --config.data.data_dir=$DATA --config.tokenizer.path=$SPM

Scale (stated, NOT MEASURED on accelerators: no TPU/GPU was available when it was written):
- Global batch 32768 (SigLIP's), e.g. 128 per chip on a v5e-256 slice. The loss is SigLIP's
  chunked one (``loss_chunk_size``): the text embeddings travel around the data slices and
  each holds ``[its batch, 64]`` logits at a time, never ``[its batch, 32768]`` (and not its
  gradient either). 64 must divide each data slice's batch (per-chip batch x ``fsdp``).
- Sharding: FSDP over groups of 4 chips (``parallel.fsdp = 4``, within a host), every array
  of the state split along its largest dimension (``rules``); the batch is split over all
  chips.
- Precision and remat: bfloat16 compute, float32 parameters and Adam second moment, first
  moment in bfloat16 (``optim.mu_dtype``); ``nothing_saveable`` per block (each block is
  recomputed in the backward pass: about a third more compute, little activation memory).
- Expected memory per device at 128 examples per chip, about 4 GB, within a 16 GB v5e chip:
  the state is 0.48 GiB per chip (203.6 M parameters at 10 B each, split 4 ways: XLA's
  argument size for this step on a 4-device mesh) plus gradients (0.2 GB split, 0.8 GB while a
  full float32 gradient is reduced) and the parameters gathered for use (up to 0.8 GB);
  activations are the blocks' bfloat16 inputs (about 5 MB per example, 0.6 GB at 128) plus one
  block recomputed at a time (about 10 MB per example, 1.3 GB).
- MFU is logged against ``config.parallel.peak_tflops`` (197: TPU v5e, bfloat16 dense); the
  analytic count is 139.3 GFLOPs per example, not counting the recomputed forward pass.
"""

import ml_collections

from multimodal_jax.configs import clip_vit_b16


def get_config() -> ml_collections.ConfigDict:
    config = clip_vit_b16.get_config()
    config.loss = "sigmoid"
    config.loss_chunk_size = 64  # texts scored 64 at a time (divides each data slice's batch)
    config.batch_size = 32768
    config.total_steps = 100_000

    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece", path="", vocab_size=32_000, max_len=64))
    config.model = ml_collections.ConfigDict(dict(
        embed_dim=768, dtype="bfloat16",
        image=dict(variant="B/16", pool="map", posemb="sincos2d", act="gelu_tanh", ln_eps=1e-6,
                   remat_policy="nothing_saveable"),
        text=dict(width=768, depth=12, mlp_dim=3072, num_heads=12, max_len=64, causal=False,
                  pool="last", act="gelu_tanh", ln_eps=1e-6, remat_policy="nothing_saveable")))

    config.optim.update(lr=1e-3, warmup_steps=5_000, b1=0.9, b2=0.95, eps=1e-8,
                        weight_decay=1e-4, grad_clip_norm=1.0, mu_dtype="bfloat16")
    config.parallel.update(fsdp=4, rules=clip_vit_b16.FSDP_RULES, peak_tflops=197.0)
    return config
