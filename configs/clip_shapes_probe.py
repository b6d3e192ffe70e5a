"""Linear probe and few-shot classification on the frozen image tower of a clip_shapes run.

Run (after training configs/clip_shapes.py into that workdir):
  python -m train.evaluate --config configs/clip_shapes_probe.py --workdir workdirs/clip_shapes

configs/clip_shapes.py with its evaluation extended by a probe on the image tower's pooled
features (before the projection): closed-form ridge regression and logistic regression fitted
on 10k single-object train images (strength chosen on a slice of train), plus 1/5/10-shot
ridge, scored on the single-object test images. Prints zero-shot, retrieval and probe metrics
(``probe/test/ridge_top1``, ``fewshot/test/5shot_top1``, ...). Measured: README_classification.
"""

from multimodal_jax.configs import clip_shapes
from multimodal_jax.evaluation import linear_probe


def get_config():
    config = clip_shapes.get_config()
    config.evaluation.linear_probe = linear_probe.default_config(
        methods=("ridge", "logistic"), shots=(1, 5, 10), filter=("num_objects", 1),
        train_examples=10_000)
    return config
