"""``python -m train.predict`` and ``multimodal_jax.inference`` on tiny trained workdirs: the
preprocessing of image files is bitwise the evaluation pipeline's, and each subcommand
(zeroshot, retrieve, embed, caption, generate) writes what it says, lists unreadable files
and goes on."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from multimodal_jax import inference
from multimodal_jax.data import image_files
from multimodal_jax.data import pipeline
from multimodal_jax.data import vocab
from multimodal_jax.evaluation import figures
from multimodal_jax.runtime import loop
from multimodal_jax.tasks import adversarial
from tests import env as test_env
from tests import tiny
from tests import tiny_gan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOWN = 12  # test images written as files


def _short(config):
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2, log_every_steps=1)
    return config


@pytest.fixture(scope="module")
def clip_run(shapes_data_dir, tmp_path_factory):
    config = _short(tiny.tiny_shapes_config(shapes_data_dir))
    workdir = str(tmp_path_factory.mktemp("predict") / "clip")
    loop.train_and_evaluate(config, workdir)
    return config, workdir


@pytest.fixture(scope="module")
def image_dir(shapes_data_dir, tmp_path_factory):
    """The first test images of the tiny dataset as PNG files (their stored bytes), a grey
    JPEG, an RGBA PNG, and two files that are not images."""
    folder = tmp_path_factory.mktemp("images")
    builder = tfds.builder("captioned_shapes/tiny", data_dir=shapes_data_dir)
    ds = builder.as_dataset(split="test", decoders={"image": tfds.decode.SkipDecoding()},
                            shuffle_files=False)
    for i, example in enumerate(ds.take(SHOWN).as_numpy_iterator()):
        (folder / f"img_{i:02d}.png").write_bytes(example["image"])
    from PIL import Image  # noqa: PLC0415 - only this fixture draws images

    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(folder / "grey.jpg")
    Image.fromarray(np.full((12, 12, 4), 200, np.uint8)).save(folder / "rgba.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    return str(folder)


def _stored_test_images(config) -> np.ndarray:
    batches = pipeline.make_eval_iterator(config.data, "test", None, 16)
    return np.concatenate([b["image"][b["mask"]] for b in batches])[:SHOWN]


def test_files_are_preprocessed_bitwise_as_the_pipeline_does(clip_run, image_dir):
    config, _ = clip_run
    paths = image_files.expand([image_dir])
    assert [os.path.basename(p) for p in paths][:2] == ["broken.png", "grey.jpg"]  # .txt not taken
    read = image_files.Preprocessor(config.data).files(paths)
    assert [os.path.basename(n) for n, _ in read.unreadable] == ["broken.png"]
    shown = [i for i, n in enumerate(read.names) if os.path.basename(n).startswith("img_")]
    np.testing.assert_array_equal(read.pixels[shown], _stored_test_images(config))
    size = config.data.image_size
    assert read.pixels.shape == (SHOWN + 2, size, size, 3) and read.pixels.dtype == np.float32


def test_inference_load_embeds_and_classifies_in_five_lines(clip_run, image_dir):
    config, workdir = clip_run
    run = inference.load(workdir)
    images = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir) if f.startswith("img_"))
    image_emb, text_emb = run.embed_images(images), run.embed_texts(["a red circle", "a blue square"])
    assert image_emb.shape == (SHOWN, config.model.embed_dim) and text_emb.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(image_emb, axis=1), 1.0, atol=1e-5)
    # The same embeddings as the model on the pipeline's batches (batching pads, nothing else).
    model, params = run.model, run.params
    reference = model.apply({"params": params}, _stored_test_images(config),
                            method=type(model).encode_image)
    np.testing.assert_allclose(image_emb, reference, atol=1e-5)
    same = run.embed_images(np.stack([np.asarray(_png(p)) for p in images]))  # uint8 arrays
    np.testing.assert_allclose(same, image_emb, atol=1e-6)
    result = run.classify(images[:3], ["red circle", "blue square", "green star"], k=2)
    assert [len(r["topk"]) for r in result] == [2, 2, 2]
    assert all(r["top1"] == r["topk"][0][0] for r in result)
    with pytest.raises(inference.UnreadableImages, match="broken.png"):
        run.embed_images([os.path.join(image_dir, "broken.png")])
    with pytest.raises(ValueError, match="caption needs a captioning run"):
        run.caption(images[:1])


def _png(path):
    from PIL import Image  # noqa: PLC0415

    return Image.open(path).convert("RGB")


def _predict(*args, expect: int = 0):
    result = subprocess.run([sys.executable, "-m", "train.predict", *args], cwd=ROOT,
                            env=test_env.with_devices(1), capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_predict_zeroshot_retrieve_and_embed_commands(clip_run, image_dir, tmp_path):
    _, workdir = clip_run
    out = tmp_path / "zs.jsonl"
    done = _predict("zeroshot", "--workdir", workdir, "--images", image_dir, "--classes",
                    "red circle,blue square,green star", "--template", "a {}.", "-k", "2",
                    "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == SHOWN + 2 and set(lines[0]) == {"image", "top1", "topk"}
    assert len(lines[0]["topk"]) == 2 and abs(sum(p for _, p in lines[0]["topk"]) - 1) < 1
    assert f"-> {out}" in done.stdout.splitlines()[-1] and "1 unreadable" in done.stdout
    assert "unreadable: " in done.stderr and "broken.png" in done.stderr

    done = _predict("retrieve", "--workdir", workdir, os.path.join(image_dir, "img_*.png"),
                    "--query", "a red circle", "--query", "a blue square", "-k", "3")
    found = [json.loads(line) for line in done.stdout.splitlines()]
    assert [f["query"] for f in found] == ["a red circle", "a blue square"]
    assert len(found[0]["results"]) == 3 and "-> standard output" in done.stderr

    texts = tmp_path / "texts.txt"
    texts.write_text("a red circle\n\na blue square\n")
    _predict("embed", "--workdir", workdir, "--texts", str(texts), "--out", str(tmp_path / "t.npy"))
    rows = json.loads((tmp_path / "t.rows.json").read_text())
    assert rows["rows"] == ["a red circle", "a blue square"] and rows["kind"] == "text"
    emb = np.load(tmp_path / "t.npy")
    np.testing.assert_allclose(emb, inference.load(workdir).embed_texts(rows["rows"]), atol=1e-6)
    _predict("embed", "--workdir", workdir, "--images", image_dir, "--out", str(tmp_path / "i.npy"))
    assert np.load(tmp_path / "i.npy").shape[0] == len(json.loads(
        (tmp_path / "i.rows.json").read_text())["rows"]) == SHOWN + 2

    bad = _predict("caption", "--workdir", workdir, "--images", image_dir, expect=2)
    assert bad.stderr.startswith("error: ") and "caption needs a captioning run" in bad.stderr


@pytest.fixture(scope="module")
def caption_run(shapes_data_dir, tmp_path_factory):
    config = _short(tiny.tiny_captioning_config())
    config.data.update(name="captioned_shapes/tiny", data_dir=shapes_data_dir, shuffle_buffer=256)
    config.tokenizer.max_len = config.model.decoder.max_len = 16
    config.evaluation.update(batch_size=64, splits=("test",), zeroshot_splits=())
    workdir = str(tmp_path_factory.mktemp("predict") / "caption")
    loop.train_and_evaluate(config, workdir)
    return config, workdir


@pytest.mark.slow
def test_predict_caption_command_greedy_and_beam(caption_run, image_dir, tmp_path):
    config, workdir = caption_run
    run = inference.load(workdir)
    images = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir) if f.startswith("img_"))
    greedy = run.caption(images)
    tokenizer = vocab.trained_tokenizer(config, workdir)
    from multimodal_jax.models import decoding  # noqa: PLC0415

    expected = decoding.caption(run.model, run.params, _stored_test_images(config), tokenizer,
                                config.decoding, config.tokenizer.max_len)
    assert greedy == expected
    out = tmp_path / "captions.jsonl"
    done = _predict("caption", "--workdir", workdir, "--images", image_dir, "--method", "beam",
                    "--beam_size", "2", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == SHOWN + 2 and all(isinstance(x["caption"], str) for x in lines)
    assert "(beam decoding)" in done.stdout


@pytest.fixture(scope="module")
def gan_run(clip_run, tmp_path_factory):
    """A tiny text-to-image GAN of 2 steps on the module's contrastive run (as its conditioning
    model and as its judge: no other run is trained; no attribute classifier)."""
    clip_config, clip_workdir = clip_run
    config = tiny_gan.tiny_gan_config(clip_config.data.data_dir)
    for name in ("clip", "eval_encoder"):
        config.prerequisites[name].update(workdir=clip_workdir, config=clip_config)
    del config.prerequisites["classifier"]
    config.evaluation.update(classifier="", untrained_baseline=False)
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2)
    workdir = str(tmp_path_factory.mktemp("predict") / "gan")
    loop.train_and_evaluate(config, workdir)
    return config, workdir


@pytest.mark.slow
def test_predict_generate_command(gan_run, tmp_path):
    config, workdir = gan_run
    run = inference.load(workdir)
    images = run.generate(["a red star", "a blue circle"], n=3, seed=0)
    size = config.data.image_size
    assert images.shape == (2, 3, size, size, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(run.generate(["a red star"], n=3, seed=0)[0], images[0])
    assert not np.array_equal(images[0, 0], images[0, 1])  # different noise, different images
    # The GAN's own sampler (the one its evaluation uses) on the same noise and caption tokens.
    setup, frozen = run.extras["setup"], run.extras["frozen"]
    z = jax.random.normal(jax.random.key(0), (6, config.gan.z_dim))
    tokens = run.extras["cond_tokenizer"].encode(["a red star"] * 3 + ["a blue circle"] * 3,
                                                 run.extras["cond_max_len"])
    direct = adversarial.generate(setup, run.params["g_ema"], frozen, z, tokens)
    np.testing.assert_array_equal(figures.to_uint8(direct, (0.5,) * 3, (0.5,) * 3),
                                  images.reshape((6,) + images.shape[2:]))
    # Truncation: psi = 1 (the default here) is the untruncated sampler; psi = 0 one image per prompt.
    np.testing.assert_array_equal(run.generate(["a red star"], n=3, seed=0, psi=1.0)[0], images[0])
    truncated = run.generate(["a red star"], n=3, seed=0, psi=0.0)[0].astype(np.int16)
    assert np.abs(truncated[1:] - truncated[:1]).max() <= 1  # equal up to uint8 rounding
    with pytest.raises(ValueError, match=r"must be a number in \[0, 1\]"):
        run.generate(["a red star"], psi=1.5)
    out = tmp_path / "samples"
    done = _predict("generate", "--workdir", workdir, "--prompts", "a red star", "a blue circle",
                    "--n", "2", "--seed", "0", "--psi", "0.7", "--out", str(out))
    names = sorted(os.listdir(out))
    assert "grid.png" in names and "samples.json" in names
    assert len([n for n in names if n.endswith(".png")]) == 2 * 2 + 1
    assert names[0] == "000_a_red_star_0.png" and f"-> {out}" in done.stdout
    assert json.loads((out / "samples.json").read_text())["psi"] == 0.7
    refused = _predict("generate", "--workdir", workdir, "--prompts", "a red star", "--psi", "1.5",
                       "--out", str(tmp_path / "no"), expect=2)
    assert "error: psi (--psi)=1.5" in refused.stderr and not (tmp_path / "no").exists()


@pytest.mark.slow
def test_predict_explain_command_writes_an_overlay_per_image_and_text(clip_run, image_dir, tmp_path):
    _, workdir = clip_run
    run = inference.load(workdir)
    images = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir) if f.startswith("img_"))[:2]
    maps = run.explain(images, ["a red star", "a blue circle"], ["occlusion", "map_attention"])
    grid = run.config.data.image_size // run.config.model.image.patch_size
    assert maps["occlusion"].shape == (2, 2, grid, grid) and maps["logits"].shape == (2, 2)
    np.testing.assert_allclose(maps["map_attention"][:, 0], maps["map_attention"][:, 1], atol=1e-6)
    # The logit explained is the model's own: scale * <image, text>.
    image_emb, text_emb = run.embed_images(images), run.embed_texts(["a red star", "a blue circle"])
    np.testing.assert_allclose(maps["logits"], np.exp(run.params["logit_scale"]) * image_emb @ text_emb.T,
                               rtol=1e-5, atol=1e-5)
    out = tmp_path / "maps"
    done = _predict("explain", "--workdir", workdir, "--images", image_dir, "--text", "a red star",
                    "--text", "a blue circle", "--out", str(out))
    lines = [json.loads(line) for line in (out / "explain.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * (SHOWN + 2) and "1 unreadable" in done.stdout
    assert set(lines[0]["peak_patch"]) == {"occlusion", "grad_input", "grad_rollout", "map_attention",
                                           "rollout"}
    assert all((out / line["file"]).exists() for line in lines)
    bad = _predict("explain", "--workdir", workdir, "--images", image_dir, "--text", "a red star",
                   "--methods", "saliency", "--out", str(out), expect=2)
    assert bad.stderr.startswith("error: ") and "saliency" in bad.stderr


def test_predict_lists_the_explanation_methods_evaluation_has():
    from multimodal_jax.cli import predict  # noqa: PLC0415
    from multimodal_jax.evaluation import explain  # noqa: PLC0415

    assert predict.EXPLAIN_METHODS == explain.METHODS
