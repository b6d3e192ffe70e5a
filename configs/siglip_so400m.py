"""Reference: SigLIP So400m/14 (the shape-optimised 400M-parameter ViT: width 1152, depth 27,
MLP 4304; its text tower alike, 64 tokens, 32k SentencePiece vocabulary) at 224 px and a
global batch of 32k on a TPU v5p slice of 64 chips (v5p-128: ``v5p:4x4x4``).

Run (the same command on every host of the slice; see README):
  python -m train --config configs/siglip_so400m.py --workdir gs-mounted/siglip_so400m \
      --config.data.data_dir=$DATA --config.tokenizer.path=$SPM
Before renting the slice, compile its step here (no TPU needed, reads no data):
  python -m train.compile --config configs/siglip_so400m.py --topology v5p:4x4x4

Scale: 512 examples per chip; the chunked sigmoid loss (texts scored 64 at a time, never the
``[batch, 32768]`` logits); FSDP over groups of 16 chips, every array split along its largest
dimension; bfloat16 compute and first moment; ``nothing_saveable`` remat per block. Not yet
compiled: the TPU compiler outgrew this 24 GiB CPU host (killed at 22 GB after 33 minutes);
compile it on a host with 64 GB or more.
"""

import ml_collections

from multimodal_jax.configs import siglip_vit_b16

SO400M = dict(width=1152, depth=27, mlp_dim=4304, num_heads=16)


def get_config() -> ml_collections.ConfigDict:
    config = siglip_vit_b16.get_config()
    config.batch_size = 32768
    config.model = ml_collections.ConfigDict(dict(
        embed_dim=1152, dtype="bfloat16",
        image=dict(**SO400M, patch_size=14, pool="map", posemb="sincos2d", act="gelu_tanh",
                   ln_eps=1e-6, remat_policy="nothing_saveable"),
        text=dict(**SO400M, max_len=64, causal=False, pool="last", act="gelu_tanh",
                  ln_eps=1e-6, remat_policy="nothing_saveable")))
    config.parallel.update(fsdp=16, peak_tflops=459.0)
    return config
