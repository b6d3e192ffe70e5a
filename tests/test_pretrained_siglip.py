"""A published SigLIP (here: a random-weight Hugging Face SiglipModel saved with a SentencePiece
model by transformers' SiglipTokenizer, and a preprocessor config) runs in the contrastive task
through ``configs/siglip_pretrained.py``: the config read from the folder builds the model the
converter builds, its tokenizer and model together give PyTorch's text embeddings for
transformers' own tokenization of the same captions (to 1e-5), ``train.evaluate``'s code path
evaluates zero-shot, retrieval and the pointing game at step 0, fine-tuning with the sigmoid
loss starts from the weights, and ``inference.load_weights("hf_siglip:DIR")`` explains its
logits with the bias included."""

import jax
import numpy as np
import pytest

from multimodal_jax import inference
from multimodal_jax.configs import siglip_pretrained
from multimodal_jax.data import tokenizers
from multimodal_jax.pretrained import init_from
from multimodal_jax.pretrained import load_hf_siglip
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.tasks import contrastive
from tests import hf_clip_reference as clip_test
from tests import hf_siglip_reference as hf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ARCH = "siglip_tanh"  # 32 px images of 8 px patches, texts of 12 tokens
MEAN, STD = (0.4, 0.5, 0.6), (0.25, 0.5, 0.75)
CAPTIONS = ["a red star.", "A photo of a small BLUE circle, above a green square!", "a white ring"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(the PyTorch model, its HF tokenizer, the save_pretrained folder with spiece.model and
    preprocessor_config.json)."""
    path = tmp_path_factory.mktemp("published_siglip")
    kind, text, vision, length, _ = hf.ARCHS[ARCH]
    model = hf.perturbed_siglip(kind, text, vision)
    model.save_pretrained(str(path))
    tokenizer = hf.siglip_sentencepiece(path, length)
    transformers.SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=list(MEAN),
                                      image_std=list(STD)).save_pretrained(str(path))
    return model, tokenizer, str(path)


def _config(path: str, data_dir: str):
    config = siglip_pretrained.get_config(path)
    config.data.update(name="captioned_shapes/tiny", data_dir=data_dir, shuffle_buffer=256)
    config.batch_size = 16
    config.evaluation.update(batch_size=64, retrieval_examples=64)
    return config


def test_config_is_read_from_the_folder(weights, shapes_data_dir, tmp_path):
    _, _, path = weights
    config = siglip_pretrained.get_config(f"hf_siglip:{path}")
    assert config.loss == "sigmoid" and config.init_from == f"hf_siglip:{path}"
    assert config.model.image.pool == "map" and not config.model.project_image
    assert config.model.text.pool == "last" and not config.model.text.mask_pad
    assert config.tokenizer.kind == "siglip" and config.tokenizer.max_len == hf.ARCHS[ARCH][3]
    assert config.data.image_size == 32
    np.testing.assert_allclose(config.data.mean, MEAN)
    np.testing.assert_allclose(config.data.std, STD)
    config_checks.validate(_config(path, shapes_data_dir), str(tmp_path), devices=1)
    with pytest.raises(ValueError, match="needs the weights folder"):
        siglip_pretrained.get_config("")


def test_config_from_the_folder_gives_pytorchs_outputs(weights, shapes_data_dir, tmp_path):
    model, tokenizer, path = weights
    config = _config(path, shapes_data_dir)
    task = contrastive.ContrastiveTask(config, str(tmp_path))
    params = task.create_state(jax.random.key(0)).params
    _, expected = load_hf_siglip(path)
    jax.tree.map(np.testing.assert_array_equal, params, expected["params"])

    # Our tokenizer and model on the captions = transformers' tokenizer and model on them.
    length = hf.ARCHS[ARCH][3]
    ours = tokenizers.get_tokenizer(config.tokenizer).encode(CAPTIONS)
    theirs = np.asarray(tokenizer(CAPTIONS, padding="max_length", truncation=True,
                                  max_length=length)["input_ids"], np.int32)
    np.testing.assert_array_equal(ours, theirs)
    images = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    ref = hf.reference(model, "siglip", images, theirs)
    diffs = clip_test.max_diffs(task.model, {"params": params}, images, ours, ref)
    assert max(diffs.values()) < hf.TOL, diffs


def test_evaluate_without_checkpoints_evaluates_the_published_weights(weights, shapes_data_dir, tmp_path):
    _, _, path = weights
    config = _config(path, shapes_data_dir)
    config.evaluation.explain.update(split="test", examples=24, pictures=2, batch_size=8,
                                     methods=("grad_input", "map_attention"))
    metrics = evaluate_checkpoint.evaluate_latest(config, str(tmp_path))
    assert metrics["step"] == 0
    for key in ("zeroshot/test/top1", "zeroshot/heldout/top1", "retrieval/test/i2t_r1",
                "explain/test/grad_input/pointing_acc", "explain/test/map_attention/pointing_acc"):
        assert 0.0 <= metrics[key] <= 1.0, key


@pytest.mark.slow
def test_fine_tuning_with_the_sigmoid_loss_starts_from_them(weights, shapes_data_dir, tmp_path):
    _, _, path = weights
    config = _config(path, shapes_data_dir)
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2, log_every_steps=1,
                  lock_image_tower=True)
    config.optim.update(lr=1e-3, warmup_steps=0)
    metrics = loop.train_and_evaluate(config, str(tmp_path))
    assert metrics["step"] == 2 and np.isfinite(metrics["train/loss"])
    trained = init_from.restore_params(str(tmp_path))
    _, published = load_hf_siglip(path)
    jax.tree.map(np.testing.assert_array_equal, trained["image_tower"],
                 published["params"]["image_tower"])
    assert float(trained["logit_bias"]) != float(published["params"]["logit_bias"])
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         trained["text_tower"], published["params"]["text_tower"])
    assert all(jax.tree.leaves(moved)), "every text-tower leaf trains"


def test_load_weights_explains_the_logits_with_their_bias(weights, tmp_path):
    _, _, path = weights
    run = inference.load_weights(f"hf_siglip:{path}", batch_size=4)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    texts = ["a red star", "a blue circle"]
    maps = run.explain(pixels, texts, ["grad_input", "map_attention"])
    assert maps["grad_input"].shape == (2, 2, 4, 4)
    image_emb, text_emb = run.embed_images(pixels), run.embed_texts(texts)
    params = run.params
    expected = np.exp(params["logit_scale"]) * image_emb @ text_emb.T + params["logit_bias"]
    np.testing.assert_allclose(maps["logits"], expected, rtol=1e-5, atol=1e-5)
