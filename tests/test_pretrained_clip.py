"""A published CLIP (here: a random-weight Hugging Face CLIPModel saved with its CLIP BPE files)
runs in the contrastive task through ``configs/clip_pretrained.py``: the config read from the
folder builds the model the converter builds, the task starts from exactly those weights (so
from the PyTorch model's outputs, to 1e-5), ``train.evaluate``'s code path evaluates zero-shot
and retrieval on a workdir without checkpoints (step 0), and training fine-tunes from them."""

import json

import jax
import numpy as np
import pytest

from multimodal_jax.configs import clip_pretrained
from multimodal_jax.pretrained import init_from
from multimodal_jax.pretrained import load_hf_clip
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.tasks import contrastive
from tests import hf_clip_reference as hf

LETTERS = "abcdefghijklmnopqrstuvwxyz."


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A save_pretrained CLIP folder with a 64-token CLIP BPE vocabulary beside the weights."""
    path = tmp_path_factory.mktemp("published_clip")
    model = hf.perturbed_clip(*hf.ARCHS["quick_gelu"][:3])
    model.save_pretrained(str(path))
    tokens = list(LETTERS) + [c + "</w>" for c in LETTERS]
    tokens += [f"<unused{i}>" for i in range(hf.BOS - len(tokens))] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == hf.VOCAB and tokens.index("<|startoftext|>") == hf.BOS
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return model, str(path)


def _config(path: str, data_dir: str):
    config = clip_pretrained.get_config(path)
    config.data.update(name="captioned_shapes/tiny", data_dir=data_dir, shuffle_buffer=256)
    config.batch_size = 16
    config.evaluation.update(batch_size=64, retrieval_examples=64)
    return config


def test_config_from_the_folder_starts_from_the_reference_weights(weights, shapes_data_dir, tmp_path):
    model, path = weights
    config = _config(path, shapes_data_dir)
    task = contrastive.ContrastiveTask(config, str(tmp_path))
    params = task.create_state(jax.random.key(0)).params
    _, expected = load_hf_clip(path)
    jax.tree.map(np.testing.assert_array_equal, params, expected["params"])

    images, tokens = hf.random_inputs(model, hf.ARCHS["quick_gelu"][3])
    diffs = hf.max_diffs(task.model, {"params": params}, images, tokens,
                         hf.reference(model, images, tokens))
    assert max(diffs.values()) < hf.TOL, diffs


def test_evaluate_without_checkpoints_evaluates_the_published_weights(weights, shapes_data_dir, tmp_path):
    _, path = weights
    metrics = evaluate_checkpoint.evaluate_latest(_config(path, shapes_data_dir), str(tmp_path))
    assert metrics["step"] == 0
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1"):
        assert 0.0 <= metrics[key] <= 1.0, key


def test_fine_tuning_starts_from_them_and_can_lock_the_image_tower(weights, shapes_data_dir, tmp_path):
    _, path = weights
    config = _config(path, shapes_data_dir)
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2, log_every_steps=1,
                  lock_image_tower=True)
    config.optim.update(lr=1e-3, warmup_steps=0)
    metrics = loop.train_and_evaluate(config, str(tmp_path))
    assert metrics["step"] == 2 and np.isfinite(metrics["train/loss"])
    trained = init_from.restore_params(str(tmp_path))
    _, published = load_hf_clip(path)
    jax.tree.map(np.testing.assert_array_equal, trained["image_tower"],
                 published["params"]["image_tower"])
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         trained["text_tower"], published["params"]["text_tower"])
    assert all(jax.tree.leaves(moved)), "every text-tower leaf trains"
