"""The training loop end to end on the built-in dataset: a run stopped and resumed ends
bitwise-equal to one that never stopped (the contrastive task, and classification with mixup /
CutMix, whose random keys must resume too); metrics, TensorBoard events and a picture appear."""

import json
import os

from tests import runs
from tests import tiny


def test_resume_is_bitwise_equal_to_uninterrupted(shapes_data_dir, tmp_path):
    config = tiny.tiny_shapes_config(shapes_data_dir)
    metrics = runs.assert_resume_equals_straight(config, tmp_path, stop_at_step=4)
    straight = str(tmp_path / "straight")

    assert metrics["step"] == config.total_steps
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1",
                "train/loss"):
        assert 0.0 <= metrics[key] <= 1.0 or key == "train/loss", key
    lines = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
    assert [e["step"] for e in lines if "train/loss" in e] == [2, 4, 6]
    assert os.listdir(os.path.join(straight, "tensorboard"))
    pictures = os.listdir(os.path.join(straight, "pictures"))
    assert any(p.endswith(".png") for p in pictures)


def test_classification_with_random_mixing_resumes_bitwise(shapes_data_dir, tmp_path):
    """Mixup / CutMix draw from the step's key: a resumed run draws what the straight one did."""
    config = tiny.tiny_classifier_config(shapes_data_dir)
    config.update(total_steps=6, checkpoint_every_steps=3, log_every_steps=3, eval_every_steps=6)
    config.mix.kind = "both"
    runs.assert_resume_equals_straight(config, tmp_path, stop_at_step=3)
