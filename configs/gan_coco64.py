"""Reference text-to-image GAN for accelerators: COCO captions at 64 px, conditioned on a
published CLIP's text tower and judged by another published CLIP. Not run here (no GPU, no
data offline); the numbers it reaches are not measured.

Needs, prepared beforehand (nothing is downloaded at run time):
  * ``coco_captions`` in TFDS format: ``tfds build coco_captions --data_dir=DIR`` on a machine
    with the source files; pass ``--config.data.data_dir=DIR``;
  * two Hugging Face CLIP folders (``save_pretrained``, safetensors weights): the conditioning
    model (``condition.encoder``, e.g. clip-vit-base-patch32) and a *different* evaluation
    encoder (``evaluation.encoder``, e.g. clip-vit-large-patch14) for fd_clip / kid_clip /
    precision / recall / CLIP score. There is no attribute classifier for COCO.

Run:
  python -m train --config configs/gan_coco64.py --workdir workdirs/gan_coco64 \
    --config.data.data_dir=/data/tfds \
    --config.condition.encoder=hf_clip:/weights/clip-vit-base-patch32 \
    --config.evaluation.encoder=hf_clip:/weights/clip-vit-large-patch14
Compiled for v5e:2x2 by the TPU compiler on a CPU host (libtpu 0.0.42.1; ``python -m
train.compile --config configs/gan_coco64.py --topology v5e:2x2`` with the two encoder flags;
their folders' config.json is all it reads): 2.96 GiB per chip at 64 per chip, 3.55 TFLOP per
step, roofline 63 ms.
For 128 px: --config.data.image_size=128 and one more width in each of model.generator.widths
and model.discriminator.widths.
"""

import ml_collections

from multimodal_jax.configs import gan_shapes


def get_config():
    config = gan_shapes.get_config()
    config.total_steps = 200_000
    config.batch_size = 256
    config.log_every_steps = 500
    config.eval_every_steps = config.checkpoint_every_steps = 10_000
    config.keep_checkpoints = 3
    config.prerequisites = ml_collections.ConfigDict()  # both CLIPs are published weights
    config.condition.encoder = "hf_clip:/path/to/clip-vit-base-patch32"
    config.data = ml_collections.ConfigDict(dict(
        name="coco_captions", data_dir="", train_split="train", image_key="image",
        text_key="captions/text", label_key=None, image_size=64, mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5), shuffle_buffer=50_000, flip=False, train_filter=None))
    config.model.dtype = "bfloat16"
    config.model.generator.update(widths=(512, 512, 256, 128, 64), style_dim=512, cond_dim=256,
                                  mapping_depth=4, groups=32)
    config.model.discriminator.update(widths=(64, 128, 256, 512))
    for side in ("g", "d"):  # the shapes config's faster rate was measured on 32 px only
        config.optim[side].lr = 2e-4
    # the shapes config's late pull (align_weight_late) was measured on 32 px shapes only
    config.gan.update(z_dim=128, align_weight=0.5, align_late_steps=0, r1_gamma=0.2,
                      augment=("color", "translation", "cutout"), ema_half_life_images=500_000.0)
    config.evaluation.update(encoder="hf_clip:/path/to/clip-vit-large-patch14", classifier="",
                             split="val", filter=None, num_examples=10_000, batch_size=500,
                             kid_subsets=100, kid_subset_size=1000)
    return config
