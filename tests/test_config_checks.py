"""Bad configs get one clear message before anything heavy runs, and the CLI exits with 2."""

import os
import subprocess
import sys

import pytest

from multimodal_jax.runtime import config_checks
from tests import env as test_env
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _error(config, workdir="/tmp/unused") -> str:
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.validate(config, workdir)
    return str(info.value)


def test_batch_not_divisible_by_devices():
    config = tiny.tiny_contrastive_config()
    config.batch_size = 12
    assert "does not divide over 8 devices" in _error(config)


def test_image_size_not_tiled_by_patch():
    config = tiny.tiny_contrastive_config()
    config.data.image_size = 18
    message = _error(config)
    assert "image_size=18" in message and "patch size 4" in message


def test_unknown_variant():
    config = tiny.tiny_contrastive_config()
    config.model.image.variant = "Q/16"
    assert "Unknown ViT variant 'Q/16'" in _error(config)


def test_missing_dataset(tmp_path):
    config = tiny.tiny_contrastive_config()
    config.data.name = "cifar10"
    config.data.data_dir = str(tmp_path)
    assert "is not prepared" in _error(config)


def test_unknown_dataset():
    config = tiny.tiny_contrastive_config()
    config.data.name = "no_such_dataset"
    assert "is not a TFDS dataset" in _error(config)


def test_wrong_types_and_missing_tokenizer_file():
    config = tiny.tiny_contrastive_config()
    config.total_steps = 0
    assert "config.total_steps must be positive" in _error(config)
    config = tiny.tiny_contrastive_config()
    config.tokenizer.path = "/no/such/tokenizer.model"
    assert "does not exist" in _error(config)


def test_cli_exits_2_with_the_message_and_no_traceback(tmp_path):
    env = test_env.with_devices(8)
    result = subprocess.run(
        [sys.executable, "-m", "train", "--config", "configs/clip_shapes.py",
         "--workdir", str(tmp_path), "--config.batch_size=12"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "does not divide over 8 devices" in result.stderr
    assert "Traceback" not in result.stderr
