"""ViT classifier on captioned-shapes fine-tuned from the image tower of a clip_shapes run.

Run (reusing a clip_shapes run of 600 steps, as the README's figures did; without the last
flag, clip_shapes.prerequisite_config() is trained first into WORKDIR/clip):
  python -m train --config configs/vit_shapes_finetune.py --workdir workdirs/vit_shapes_ft \
      --config.prerequisites.clip.workdir=workdirs/clip_shapes_600
Published weights instead (the model fields must then match the tower):
  ... --config.prerequisites.clip.workdir=hf_clip:/path/to/hf_dir
Linear probe by gradient descent (tower frozen, only the fresh head trains):
  ... --config.freeze_tower=True

configs/vit_shapes.py (same data, same ViT) with the tower taken from the CLIP checkpoint and a
fresh zero-initialised head, a lower peak learning rate and layer-wise learning-rate decay
0.75. Measured against training from scratch at equal steps: README (Classification).
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.configs import vit_shapes


def get_config():
    config = vit_shapes.get_config()
    config.prerequisites = ml_collections.ConfigDict(dict(
        clip=dict(workdir="", config=clip_shapes.prerequisite_config())))
    config.init_from = "clip"  # the prerequisite's image tower
    config.optim.lr = 3e-4
    config.optim.layer_decay = 0.75
    return config
