"""Bad configs get one clear message before anything heavy runs, and the CLI exits with 2."""

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

from multimodal_jax import configs
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


def _shipped_configs():
    """Every config under configs/ that needs no argument (those that do are tested with one)."""
    names = [m.name for m in pkgutil.iter_modules(configs.__path__)]
    return [n for n in names if n not in ("clip_pretrained", "siglip_pretrained", "recorded")]


@pytest.mark.parametrize("name", _shipped_configs())
def test_every_shipped_config_passes_its_own_checks(name):
    """A config we ship must pass the checks it meets at start-up (those that need no file),
    on a device count its FSDP axis divides: a check tightened elsewhere cannot break it
    unseen (clip_vit_l14's empty class list once did)."""
    config = importlib.import_module(f"multimodal_jax.configs.{name}").get_config()
    devices = max(1, config.get("parallel", {}).get("fsdp", 1))
    config_checks.validate(config, "/tmp/unused", devices=devices, shapes_only=True)
