"""ViT from scratch on CIFAR-10 (TFDS ``cifar10``), with inception crop, flips and mixup/CutMix.

Prepare the dataset once on a machine with internet (nothing is downloaded at run time):
  tfds build cifar10 --data_dir=$DATA
Run (a GPU or a TPU host; on a 2-core CPU it takes hours):
  python -m train --config configs/vit_cifar10.py --workdir workdirs/vit_cifar10 \
      --config.data.data_dir=$DATA
Evaluate:
  python -m train.evaluate --config configs/vit_cifar10.py --workdir workdirs/vit_cifar10 \
      --config.data.data_dir=$DATA

A ViT of width 256, depth 6, patch 4 on the native 32 px (64 tokens), global-average pooling,
200 epochs of batch 512 (19.5k steps), AdamW with cosine decay, label smoothing 0.1 and
mixup/CutMix (a coin per pair). Not measured here: CIFAR-10 is not prepared on this machine;
the pipeline and steps are tested on TFDS's mock cifar10 (tests/test_classification_data.py).
Fine-tuning a pretrained tower instead: set init_from (see configs/vit_shapes_finetune.py).
"""

from multimodal_jax.configs import vit_shapes

CIFAR10_TRAIN_EXAMPLES = 50_000


def get_config():
    config = vit_shapes.get_config()
    config.num_classes = 10
    config.batch_size = 512
    config.total_steps = 200 * CIFAR10_TRAIN_EXAMPLES // config.batch_size
    config.eval_every_steps = config.checkpoint_every_steps = 2_000
    config.keep_checkpoints = 3
    config.mix.update(kind="both", alpha=0.8)

    config.data.update(
        name="cifar10", train_split="train", label_key="label", image_size=32,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), shuffle_buffer=50_000,
        flip=True, augment="inception_crop", crop_area_min=0.35, train_filter=None)

    config.model.image.update(width=256, depth=6, mlp_dim=1024, num_heads=8, patch_size=4,
                              pool="gap", posemb="learn")
    config.optim.update(lr=1e-3, warmup_steps=1_000, weight_decay=0.05)
    config.evaluation.update(batch_size=1_000, filter=())
    config.evaluation.linear_probe.update(filter=(), train_examples=10_000)
    return config
