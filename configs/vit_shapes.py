"""ViT classifier on the built-in captioned-shapes dataset, from scratch: CPU minutes.

Run:
  python -m train --config configs/vit_shapes.py --workdir workdirs/vit_shapes
Evaluate the latest checkpoint (prints one JSON line, e.g. classification/test/top1):
  python -m train.evaluate --config configs/vit_shapes.py --workdir workdirs/vit_shapes

The 64 (shape, colour) classes of object 1 (``label``), on single-object images only (the
first-mentioned object of a two-object image is not visible as such): ~35k train images.
The ViT is the image tower of configs/clip_shapes.py (width 128, depth 4, patch 8 on 32 px,
MAP pooling), so configs/vit_shapes_finetune.py can start from that run's checkpoint.
600 steps of batch 256, softmax cross-entropy with label smoothing 0.1. Measured on a 2-core
CPU (README_classification table): top-1 >= 99% on the test split in about 5 minutes.
"""

import ml_collections

from multimodal_jax.evaluation import linear_probe
from multimodal_jax.tasks import optim


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"
    config.num_classes = 64
    config.loss = "softmax"  # "sigmoid" for multi-label data (data.extra_label_keys)
    config.label_smoothing = 0.1
    config.mix = ml_collections.ConfigDict(dict(kind="none", alpha=0.2))  # mixup/cutmix/both
    config.seed = 0
    config.total_steps = 600
    config.batch_size = 256  # global, over all devices and processes
    config.log_every_steps = 50
    config.eval_every_steps = 300
    config.checkpoint_every_steps = 300
    config.keep_checkpoints = 2
    config.init_from = ""  # "workdir:DIR", "hf_clip:DIR", ... (see multimodal_jax/pretrained/init_from.py)
    config.freeze_tower = False  # train only the fresh head

    config.data = ml_collections.ConfigDict(dict(
        name="captioned_shapes/32px", data_dir="", train_split="train", image_key="image",
        label_key="label", image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        shuffle_buffer=20_000, flip=False, augment="none", train_filter=("num_objects", 1),
        mixture=()))  # ((name, weight), ...): train on several prepared datasets (README)

    config.model = ml_collections.ConfigDict(dict(
        dtype="float32",
        image=dict(width=128, depth=4, mlp_dim=512, num_heads=4, patch_size=8, pool="map",
                   posemb="learn", act="gelu", ln_eps=1e-6, remat_policy=None)))

    config.optim = optim.default_config()
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 50
    config.optim.weight_decay = 0.05
    config.optim.layer_decay = 1.0  # < 1: layer-wise learning-rate decay (fine-tuning)

    # FSDP is one line: --config.parallel.fsdp=2 --config.parallel.rules="(('.*', 'fsdp'),)"
    config.parallel = ml_collections.ConfigDict(dict(driver="mesh", fsdp=1, rules=()))

    config.evaluation = ml_collections.ConfigDict(dict(
        batch_size=256, splits=("test",),
        filter=("num_objects", 1),  # the classes are only identifiable on single-object images
        # A probe on the frozen pooled features: off while ``methods`` and ``shots`` are empty
        # (e.g. --config.evaluation.linear_probe.methods="('ridge',)").
        linear_probe=linear_probe.default_config(methods=(), filter=("num_objects", 1))))
    return config
