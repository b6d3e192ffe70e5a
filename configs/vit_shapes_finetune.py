"""ViT classifier on captioned-shapes fine-tuned from the image tower of a clip_shapes run.

Run (reusing the README's main-job run; without the last flag, configs/clip_shapes.py is
trained first into WORKDIR/clip):
  python -m train --config configs/vit_shapes_finetune.py --workdir workdirs/vit_shapes_ft \
      --config.prerequisites.clip.workdir=workdirs/clip_shapes
Published weights instead (the model fields must then match the tower):
  ... --config.prerequisites.clip.workdir=hf_clip:/path/to/hf_dir
Linear probe by gradient descent (tower frozen, only the fresh head trains):
  ... --config.freeze_tower=True

configs/vit_shapes.py (same data, same ViT) with the tower taken from the CLIP checkpoint and a
fresh zero-initialised head, a lower peak learning rate and layer-wise learning-rate decay
0.75. Measured against training from scratch at equal steps: README (Classification).
"""

import ml_collections

from configs import clip_shapes
from configs import vit_shapes


def get_config():
    config = vit_shapes.get_config()
    config.prerequisites = ml_collections.ConfigDict(dict(
        clip=dict(workdir="", config=clip_shapes.get_config())))
    config.init_from = "clip"  # the prerequisite's image tower
    config.optim.lr = 3e-4
    config.optim.layer_decay = 0.75
    return config
