"""ViT classifier on captioned-shapes fine-tuned from the image tower of a clip_shapes run.

Run (after `python -m train --config configs/clip_shapes.py --workdir workdirs/clip_shapes`):
  python -m train --config configs/vit_shapes_finetune.py --workdir workdirs/vit_shapes_ft
Another CLIP run, or published weights (the model fields must then match the tower):
  ... --config.init_from=workdir:/path/to/run   (or hf_clip:/path/to/hf_dir)
Linear probe by gradient descent (tower frozen, only the fresh head trains):
  ... --config.freeze_tower=True

configs/vit_shapes.py (same data, same ViT) with the tower taken from the CLIP checkpoint and a
fresh zero-initialised head, a lower peak learning rate and layer-wise learning-rate decay
0.75. Measured against training from scratch at equal steps: README_classification.
"""

from configs import vit_shapes


def get_config():
    config = vit_shapes.get_config()
    config.init_from = "workdir:workdirs/clip_shapes"
    config.optim.lr = 3e-4
    config.optim.layer_decay = 0.75
    return config
