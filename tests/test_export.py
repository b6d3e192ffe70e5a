"""Export to the formats others load: a contrastive model shaped like configs/clip_shapes_hf.py
becomes a folder that transformers' ``CLIPModel.from_pretrained`` loads with no missing or
unexpected weights and the same logits to 1e-5 (its ``CLIPTokenizer`` giving our ids), a ViT
classifier a ``ViTForImageClassification`` folder (logits to 1e-5), open_clip's state dict the
same parameters back through our importer; export then import is the identity; what a format
cannot express is one error naming each difference; ``python -m train.export`` on a trained
workdir writes the folder."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.configs import clip_shapes
from multimodal_jax.data import clip_bpe
from multimodal_jax.models import factory
from multimodal_jax.pretrained import hf_export
from multimodal_jax.pretrained import load_hf_clip
from multimodal_jax.pretrained import load_hf_vit
from multimodal_jax.pretrained import load_openai_clip
from multimodal_jax.pretrained import open_clip_export
from multimodal_jax.runtime import loop
from tests import env as test_env
from tests import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-5
CAPTIONS = ["a red circle above a blue square.", "two small green stars.", "an orange ring.",
            "a little yellow triangle on the left.", "a purple cross near the top."] * 4
TEXTS = ["a red circle.", "a green star above an orange ring.", "purple!", "zz unseen words here"]
SIZE = 16


def _perturbed(params, seed: int = 1):
    """Every parameter nudged off its init (no LayerNorm left at one, no bias at zero)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape, x.dtype)
                                     for x, k in zip(leaves, keys)])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A random HF-expressible two-tower model with its trained CLIP BPE vocabulary."""
    config = tiny.tiny_hf_clip_config()
    tokenizer = clip_bpe.train_clip_bpe(CAPTIONS, str(tmp_path_factory.mktemp("bpe")), 600, max_len=8)
    model = factory.build_two_tower(config.model, "softmax", tokenizer.vocab_size, tokenizer.pad_id,
                                    tokenizer.eos_id)
    params = jax.jit(model.init)(jax.random.key(0), images=jnp.zeros((1, SIZE, SIZE, 3)),
                                 tokens=jnp.zeros((1, 8), jnp.int32))["params"]
    return config, model, _perturbed(params), tokenizer


def _images(n: int = 3):
    return np.random.default_rng(0).normal(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def test_hf_clip_export_loads_in_transformers_with_the_same_logits(clip, tmp_path):
    config, model, params, tokenizer = clip
    out = str(tmp_path / "hf")
    files = hf_export.export_clip(model, params, out, image_size=SIZE, mean=(0.5,) * 3,
                                  std=(0.5,) * 3, tokenizer=tokenizer, tokenizer_kind="clip_bpe",
                                  max_len=8)
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt",
            "preprocessor_config.json"} <= set(files)
    hf, info = transformers.CLIPModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf_tokenizer = transformers.CLIPTokenizer.from_pretrained(out)
    tokens = tokenizer.encode(TEXTS)
    theirs = hf_tokenizer(TEXTS, padding="max_length", max_length=8, truncation=True)["input_ids"]
    np.testing.assert_array_equal(tokens, np.asarray(theirs))
    images = _images()
    with torch.no_grad():
        ref = hf.eval()(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)),
                        input_ids=torch.from_numpy(tokens).long())
    ours = model.apply({"params": params}, images=images, tokens=tokens)
    np.testing.assert_allclose(ours["logits"], ref.logits_per_image.numpy(), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(ours["image_embedding"], ref.image_embeds.numpy(), atol=TOL)
    np.testing.assert_allclose(ours["text_embedding"], ref.text_embeds.numpy(), atol=TOL)
    # Export then import is the identity, and the processor config keeps our normalisation.
    _, back = load_hf_clip(out)
    jax.tree.map(np.testing.assert_array_equal, back["params"], jax.device_get(params))
    processor = json.load(open(os.path.join(out, "preprocessor_config.json")))
    assert processor["image_mean"] == [0.5] * 3 and processor["crop_size"]["height"] == SIZE


def test_a_published_clip_folder_runs_in_inference(clip, tmp_path):
    """``inference.load_weights("hf_clip:DIR")`` (``predict --weights``) reads a CLIPModel folder
    with its tokenizer and processor settings: here our own export."""
    from multimodal_jax import inference  # noqa: PLC0415

    _, model, params, tokenizer = clip
    out = str(tmp_path / "published")
    hf_export.export_clip(model, params, out, image_size=SIZE, mean=(0.25,) * 3, std=(0.5,) * 3,
                          tokenizer=tokenizer, tokenizer_kind="clip_bpe", max_len=8)
    run = inference.load_weights(f"hf_clip:{out}")
    assert run.step == 0 and run.normalisation == ((0.25,) * 3, (0.5,) * 3) and run.image_size == SIZE
    expected = model.apply({"params": params}, tokens=tokenizer.encode(TEXTS))["text_embedding"]
    np.testing.assert_allclose(run.embed_texts(TEXTS), expected, atol=1e-6)
    pixels = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), np.uint8)
    expected = model.apply({"params": params}, images=(pixels / 255.0 - 0.25) / 0.5)["image_embedding"]
    np.testing.assert_allclose(run.embed_images(pixels), expected, atol=1e-5)


def test_open_clip_export_imports_back_as_the_same_model(clip, tmp_path):
    _, model, params, tokenizer = clip
    out = str(tmp_path / "open_clip")
    files = open_clip_export.export(model, params, out, image_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert files == ["open_clip_config.json", "open_clip_model.safetensors"]
    imported, back = load_openai_clip(out)  # heads and activation from open_clip_config.json
    jax.tree.map(np.testing.assert_array_equal, back["params"], jax.device_get(params))
    tokens, images = tokenizer.encode(TEXTS), _images()
    theirs = imported.apply(back, images=images, tokens=tokens)  # open_clip's argmax pooling
    ours = model.apply({"params": params}, images=images, tokens=tokens)
    np.testing.assert_allclose(theirs["logits"], ours["logits"], atol=1e-6)
    cfg = json.load(open(os.path.join(out, "open_clip_config.json")))["model_cfg"]
    assert cfg["text_cfg"]["heads"] == 2 and cfg["vision_cfg"]["head_width"] == 16


def test_vit_classifier_exports_to_vit_for_image_classification(tmp_path):
    config = tiny.tiny_classifier_config("")
    config.model.image.update(pool="tok", patch_bias=True, pre_norm=False, ln_eps=1e-12)
    vit = factory.build_vit(config.model.image, num_classes=5)
    params = _perturbed(jax.jit(vit.init)(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))["params"])
    names = ["red circle", "blue square", "green star", "orange ring", "purple cross"]
    out = str(tmp_path / "vit")
    hf_export.export_vit(vit, params, out, image_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3,
                         class_names=names)
    hf, info = transformers.ViTForImageClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert hf.config.id2label[3] == "orange ring"
    images = _images()
    with torch.no_grad():
        ref = hf.eval()(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).logits.numpy()
    np.testing.assert_allclose(vit.apply({"params": params}, images)["logits"], ref, atol=TOL, rtol=TOL)
    _, back = load_hf_vit(out, with_pooler=False)
    jax.tree.map(np.testing.assert_array_equal, back["params"], jax.device_get(params))


def test_what_a_format_cannot_express_is_named_field_by_field():
    config = clip_shapes.get_config()  # the main job: MAP head, patch bias, no ln_pre, SentencePiece
    model = factory.build_two_tower(config.model, "sigmoid", 320, 0, 2)
    with pytest.raises(hf_export.NotExpressible) as error:
        hf_export.export_clip(model, {}, "/nonexistent", image_size=32, mean=(0.5,) * 3,
                              std=(0.5,) * 3, tokenizer=None, tokenizer_kind="sentencepiece", max_len=16)
    message = str(error.value)
    for part in ("config.model.image.pool='map', but CLIPModel pools the class token (pool='tok')",
                 "config.model.image.patch_bias=True", "config.model.image.pre_norm=False",
                 "config.model.text.pool='eos' with end-of-text id 2",
                 "config.loss='sigmoid'", "config.tokenizer.kind='sentencepiece'"):
        assert part in message, part
    assert not os.path.exists("/nonexistent")
    problems = open_clip_export.differences(model)
    assert any("ln_eps=1e-06" in p for p in problems) and any("pool='map'" in p for p in problems)
    assert hf_export.vit_differences(factory.build_vit(
        config.model.image, pool="tok", patch_bias=True, num_classes=3)) == []


@pytest.mark.slow
def test_export_command_on_a_trained_workdir(shapes_data_dir, tmp_path):
    config = tiny.tiny_hf_clip_run_config(shapes_data_dir)
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(config, workdir)
    assert os.path.exists(os.path.join(workdir, "clip_bpe", "vocab.json"))
    for fmt in ("hf", "open_clip"):
        out = str(tmp_path / fmt)
        done = subprocess.run([sys.executable, "-m", "train.export", "--workdir", workdir,
                               "--format", fmt, "--out", out], cwd=ROOT, env=test_env.with_devices(1),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1].startswith(f"export: contrastive run at step 2 -> {out}")
    hf = transformers.CLIPModel.from_pretrained(str(tmp_path / "hf")).eval()
    from multimodal_jax import inference  # noqa: PLC0415

    run = inference.load(workdir)
    images = _images()
    tokens = run.tokenize(TEXTS)
    with torch.no_grad():
        ref = hf(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)),
                 input_ids=torch.from_numpy(tokens).long()).logits_per_image.numpy()
    ours = run.model.apply({"params": run.params}, images=images, tokens=tokens)["logits"]
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=TOL)
