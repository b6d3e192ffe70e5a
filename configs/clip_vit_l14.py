"""Reference: CLIP ViT-L/14 (224 px; a 12-layer 768-wide text Transformer, 77 tokens), FSDP over
a 64-chip TPU v5e slice (v5e:8x8), on an image-text TFDS dataset you have prepared.

Run (the same command on every host of the slice; see README):
  python -m train --config configs/clip_vit_l14.py --workdir gs-mounted/clip_l14 \
      --config.data.data_dir=$DATA --config.tokenizer.path=$BPE
Before renting the slice, compile its step here (no TPU needed, reads no data):
  python -m train.compile --config configs/clip_vit_l14.py --topology v5e:8x8

Scale: global batch 8192 (128 per chip), the state (427.6 M parameters, float32 with a
bfloat16 first moment) split over groups of 8 chips (``parallel.fsdp = 8``), bfloat16
compute, ``nothing_saveable`` remat per block. Compiled for v5e:8x8 by the TPU compiler on a
CPU host (libtpu 0.0.42.1): 13.99 GiB per chip of 15.75, 43.5 TFLOP per chip by the compiler's
count (67.3 analytic: XLA counts a loop's body once), roofline 1078 ms (set by 0.88 TB of
memory traffic per chip), MFU at most 32%; with ``dots_saveable`` it needs 28.61 GiB. See
README ("Compiled for TPU on a CPU host").
"""

import ml_collections

from multimodal_jax.configs import clip_vit_b16


def get_config() -> ml_collections.ConfigDict:
    config = clip_vit_b16.get_config()
    config.batch_size = 8192
    config.model = ml_collections.ConfigDict(dict(
        embed_dim=768, dtype="bfloat16",
        image=dict(variant="L/14", pool="tok", posemb="learn", pre_norm=True, patch_bias=False,
                   act="quick_gelu", ln_eps=1e-5, remat_policy="nothing_saveable"),  # as OpenAI's
        text=dict(width=768, depth=12, mlp_dim=3072, num_heads=12, max_len=77, causal=True,
                  pool="eos", act="quick_gelu", ln_eps=1e-5, remat_policy="nothing_saveable")))
    config.optim.update(lr=4e-4, mu_dtype="bfloat16")
    config.parallel.update(fsdp=8, rules=clip_vit_b16.FSDP_RULES, peak_tflops=197.0)
    return config
