"""Class-conditional GAN on the built-in captioned-shapes dataset (32 px): G and D see the
(shape, colour) class id of object 1 (64 classes) instead of a caption embedding.

Run (the evaluation encoder and attribute classifier are trained first into sub-folders, or
reuse those of a gan_shapes run):
  python -m train --config configs/gan_shapes_classcond.py --workdir workdirs/gan_classcond \
    --config.prerequisites.eval_encoder.workdir=workdirs/gan_shapes/eval_encoder \
    --config.prerequisites.classifier.workdir=workdirs/gan_shapes/classifier
  python -m train.evaluate --config configs/gan_shapes_classcond.py --workdir workdirs/gan_classcond

configs/gan_shapes.py with ``condition.kind="class"``: no text tower, so no CLIP-alignment
loss; the CLIP score is measured against "a photo of a {class name}." prompts. Not measured
for the README.
"""

from multimodal_jax.configs import gan_shapes


def get_config():
    config = gan_shapes.get_config()
    config.condition.update(kind="class", encoder="", num_classes=64)  # label = shape * 8 + colour
    del config.prerequisites["clip"]
    config.gan.update(align_weight=0.0, align_late_steps=0)
    config.data.text_key = None  # the evaluation's captions come from the class names:
    config.data.caption_templates = ("a photo of a {}.",)
    return config
