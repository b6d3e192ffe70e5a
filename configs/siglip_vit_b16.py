"""Reference: SigLIP ViT-B/16 (sigmoid loss, chunked) at a global batch of 32k, FSDP-sharded,
on an image-text TFDS dataset you have prepared. For a TPU pod slice; not for this CPU.

Data as in ``configs/clip_vit_b16.py`` (``coco_captions`` as written; your own image-text TFDS
dataset for a real run). Tokenizer: a 32k SentencePiece model at ``config.tokenizer.path``
(or leave it empty to train one on the training captions, as the built-in dataset does).

Run (the same command on every host of the slice; see README):
  python -m train --config configs/siglip_vit_b16.py --workdir /mnt/shared/siglip_b16 \
      --config.data.data_dir=$DATA --config.tokenizer.path=$SPM

Scale (memory and FLOPs: the TPU compiler's, libtpu 0.0.42.1, on a CPU host; not run on chips):
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
- Compiled for v5e:16x16 (mesh data 64 x fsdp 4) at 128 examples per chip: 4.61 GiB per chip
  of 15.75 (0.59 GiB of arguments, 3.79 GiB of temporaries), 21.96 TFLOP per chip per step
  (with the remat's recomputed forward; analytic without it 17.85), roofline 465 ms (the
  all-gathers of FSDP move 76 GiB per chip per step), MFU at most 19.5%; compile 40 minutes.
    python -m train.compile --config configs/siglip_vit_b16.py --topology v5e:16x16
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
