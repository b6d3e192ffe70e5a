"""Reference: ViT-B/16 from scratch on ImageNet-1k (TFDS ``imagenet2012``), DeiT-B's schedule.

For a TPU pod slice (v3-32 / v4-16 or larger) or a GPU node (8x A100/H100); not for this CPU.
Compiled for v5e:2x4 by the TPU compiler on a CPU host (libtpu 0.0.42.1; ``python -m
train.compile --config configs/vit_b16_imagenet.py --topology v5e:2x4``): 10.53 GiB per chip of
15.75 at 128 per chip, 13.62 TFLOP per step (analytic 13.49), roofline 161 ms, MFU at most 43%;
the largest batch per chip that fits: 416 without remat, 264 with ``dots_saveable``.
Prepare the dataset once (manual download of the ILSVRC-2012 tars into $MANUAL):
  tfds build imagenet2012 --data_dir=$DATA --manual_dir=$MANUAL
Run (every host of the slice runs the same command; the global batch is split over them):
  python -m train --config configs/vit_b16_imagenet.py --workdir /mnt/shared/vit_b16_i1k \
      --config.data.data_dir=$DATA
Evaluate (prints classification/validation/top1, top5, loss):
  python -m train.evaluate --config configs/vit_b16_imagenet.py --workdir /mnt/shared/vit_b16_i1k \
      --config.data.data_dir=$DATA

Recipe (Touvron et al. 2021, "Training data-efficient image transformers", DeiT-B): global
batch 1024, 300 epochs (375k steps), AdamW lr 1e-3 (= 5e-4 x 1024 / 512), weight decay 0.05,
5 warmup epochs then cosine decay, label smoothing 0.1, mixup 0.8 / CutMix (a coin per pair),
inception crop (area >= 8%) and flips at 224 px, bfloat16 compute, class-token pooling.
Literature: DeiT-B reaches 81.8% top-1 on the ImageNet validation set with its full recipe.
NOT MEASURED HERE, and this config lacks parts of that recipe (RandAugment, random erasing,
stochastic depth 0.1, repeated augmentation; DeiT also uses CutMix alpha 1.0 where this uses one
alpha 0.8 for both, and evaluates on a 224 crop of a 256 resize where this resizes to 224),
which DeiT's ablations show matter for ViT-B on ImageNet-1k alone: expect lower accuracy.
"""

import ml_collections

from multimodal_jax.configs import vit_shapes

IMAGENET_TRAIN_EXAMPLES = 1_281_167


def get_config():
    config = vit_shapes.get_config()
    config.num_classes = 1000
    config.label_smoothing = 0.1
    config.mix.update(kind="both", alpha=0.8)
    config.batch_size = 1024
    epoch = IMAGENET_TRAIN_EXAMPLES // config.batch_size
    config.total_steps = 300 * epoch
    config.log_every_steps = 100
    config.eval_every_steps = config.checkpoint_every_steps = 5 * epoch
    config.keep_checkpoints = 3

    config.data.update(
        name="imagenet2012", train_split="train", label_key="label", image_size=224,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        shuffle_buffer=50_000,  # undecoded JPEGs (~110 kB each): ~5.5 GB of host memory
        flip=True, augment="inception_crop", crop_area_min=0.08, train_filter=None)

    config.model = ml_collections.ConfigDict(dict(
        dtype="bfloat16",
        image=dict(variant="B/16", pool="tok", posemb="learn", act="gelu", ln_eps=1e-6,
                   remat_policy=None)))
    config.optim.update(lr=1e-3, warmup_steps=5 * epoch, weight_decay=0.05, b2=0.999,
                        eps=1e-8, grad_clip_norm=0.0)

    config.evaluation.update(batch_size=1024, splits=("validation",), filter=())
    config.evaluation.linear_probe.update(filter=(), test_splits=("validation",))
    return config
