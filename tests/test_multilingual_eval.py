"""Multilingual evaluation: per-language zero-shot, the transfer measure, the cross-lingual
retrieval table, the pipeline pieces they need, and one tiny run end to end."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from multimodal_jax import tasks
from multimodal_jax.configs import clip_shapes_multilingual
from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import shapes_builder
from multimodal_jax.data.shapes_languages import CODES
from multimodal_jax.evaluation import multilingual
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from tests import runs


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --- the pipeline pieces ---------------------------------------------------------------------

def test_pick_never_draws_an_empty_caption_and_keeps_old_picks():
    with_empty = tf.constant(["", "ein roter Kreis", "", "a red circle"])
    picks = {pipeline._pick(with_empty, 0, i, random=True).numpy() for i in range(40)}
    assert picks == {b"ein roter Kreis", b"a red circle"}
    assert pipeline._pick(with_empty, 0, 3, random=False).numpy() == b"ein roter Kreis"
    full = tf.constant(["a", "b", "c"])
    for i in range(20):  # a list without empty strings: the pick of the code before (18a7257)
        u = tf.random.stateless_uniform([], pipeline._example_seed(0, i, pipeline._PICK_SALT),
                                        0, tf.int32.max, tf.int32)
        assert pipeline._pick(full, 0, i, random=True).numpy() == full[int(u) % 3].numpy()


def test_eval_rows_carry_their_index_in_the_split(shapes_data_dir):
    cfg = datasets.default_data_config(name="captioned_shapes/tiny", data_dir=shapes_data_dir,
                                       image_size=32, label_key="label")
    rows = {}
    for process in range(2):
        for batch in pipeline.make_eval_iterator(cfg, "test", None, 48, process, 2):
            rows.update(zip(batch["index"][batch["mask"]].tolist(),
                            batch["label"][batch["mask"]].tolist()))
    builder = tfds.builder("captioned_shapes/tiny", data_dir=shapes_data_dir)
    labels = [int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset(split="test"))]
    assert sorted(rows) == list(range(len(labels)))
    assert [rows[i] for i in range(len(labels))] == labels


# --- the metrics on embeddings made to order ------------------------------------------------

def test_retrieval_table_on_known_embeddings():
    rng = np.random.default_rng(0)
    n, d = 24, 16
    base = _unit(rng.normal(size=(n, d)))
    gloss = np.asarray([f"g{i}" for i in range(n)], object)
    gloss[5] = gloss[6]  # two examples that say the same thing
    text = {"en": _unit(base + 0.05 * rng.normal(size=(n, d))),
            "de": _unit(base + 0.05 * rng.normal(size=(n, d))),
            "zh": _unit(rng.normal(size=(n, d)))}  # zh: knows nothing
    text["de"][[5, 6]] = text["de"][[6, 5]]  # swapped, but their glosses are equal
    table = multilingual.retrieval_table(text, base, gloss)
    assert table.shape == (4, 4) and np.isnan(np.diag(table)).all()
    assert table[0, 1] == table[1, 0] == 1.0  # en <-> de
    assert table[0, 3] == table[3, 0] == 1.0  # en <-> image
    assert table[2, 0] < 0.3 and table[0, 2] < 0.3 and table[2, 3] < 0.3
    metrics = multilingual.table_metrics(table, ["en", "de", "zh"], "test")
    assert metrics["retrieval/test/en_to_de/r1"] == 1.0
    assert metrics["retrieval/test/de/t2i_r1"] == 1.0 and metrics["retrieval/test/de/i2t_r1"] == 1.0
    assert metrics["retrieval/test/cross_lingual_r1"] == pytest.approx(np.nanmean(table[:3, :3]))


def test_zeroshot_and_transfer_on_known_embeddings():
    classes = _unit(np.eye(64) + 0.01)
    pairs = [(s, c) for s in shapes_builder.SHAPES for c in shapes_builder.COLORS]
    labels = np.arange(64)
    meta = {"label": labels, "num_objects": np.ones(64, int),
            "shape": labels // 8, "color": labels % 8}
    withheld = set(pairs[:32:2])
    zh = classes.copy()
    for k in (pairs.index(p) for p in withheld):
        zh[k] = -classes[k]  # zh gets exactly its withheld pairs wrong
    class_emb = {"en": classes, "zh": zh}
    metrics = multilingual.zeroshot_by_language(classes, meta, class_emb, "test")
    assert metrics["zeroshot/test/en/top1"] == 1.0
    assert metrics["zeroshot/test/zh/top1"] == pytest.approx(1 - 16 / 64)
    xfer = multilingual.transfer(classes, meta, class_emb, "zh", withheld)
    assert xfer == {"zeroshot/xfer/zh/top1": 0.0, "zeroshot/xfer/zh/seen_top1": 1.0,
                    "zeroshot/xfer/zh/others_top1": 1.0}


def test_table_files(tmp_path):
    table = np.array([[np.nan, 0.5], [0.25, np.nan]])
    json_path, png_path = multilingual.write_table(table, ["en", "image"], "test", 10,
                                                   str(tmp_path / "t"))
    record = json.loads(open(json_path, encoding="utf-8").read())
    assert record["r1"] == [[None, 0.5], [0.25, None]] and record["labels"] == ["en", "image"]
    assert os.path.getsize(png_path) > 0
    assert multilingual.format_table(table, ["en", "image"]).splitlines()[1].split() == \
        ["en", "-", "50.0"]


def test_languages_need_the_multilingual_dataset():
    config = clip_shapes_multilingual.get_config()
    multilingual.check_config(config)
    config.evaluation.languages = ("en", "ar")
    with pytest.raises(ValueError, match="'ar'"):
        multilingual.check_config(config)
    config.evaluation.languages = ("en",)
    config.data.name = "captioned_shapes/32px"
    with pytest.raises(ValueError, match="32px_multilingual"):
        config_checks.validate(config, "/tmp/unused", shapes_only=True)


# --- end to end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def multilingual_data_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds_ml"))
    shapes_builder.prepare_shapes("tiny_multilingual", data_dir)
    return data_dir


def _tiny_config(data_dir: str) -> ml_collections.ConfigDict:
    config = clip_shapes_multilingual.get_config()
    config.data.update(name="captioned_shapes/tiny_multilingual", data_dir=data_dir,
                       shuffle_buffer=256)
    config.total_steps, config.batch_size = 4, 16
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 4
    config.tokenizer.vocab_size = 1024
    config.model.embed_dim = 16
    config.model.image.update(width=32, depth=1, mlp_dim=64, num_heads=2)
    config.model.text.update(width=32, depth=1, mlp_dim=64, num_heads=2)
    config.optim.warmup_steps = 1
    config.evaluation.update(batch_size=64, retrieval_examples=100)
    return config


@pytest.mark.slow
def test_tiny_multilingual_run_end_to_end(multilingual_data_dir, tmp_path):
    config, workdir = _tiny_config(multilingual_data_dir), str(tmp_path / "run")
    metrics = loop.train_and_evaluate(config, workdir)
    for code in CODES:
        for key in (f"zeroshot/test/{code}/top1", f"zeroshot/heldout/{code}/top5",
                    f"retrieval/test/{code}/t2i_r1"):
            assert 0.0 <= metrics[key] <= 1.0, key
    for a in CODES:
        for b in CODES:
            assert (f"retrieval/test/{a}_to_{b}/r1" in metrics) == (a != b)
    assert {"zeroshot/xfer/zh/top1", "zeroshot/xfer/zh/seen_top1"} <= set(metrics)
    assert "zeroshot/test/top1" not in metrics  # the English-only keys are replaced
    pictures = os.listdir(os.path.join(workdir, "pictures"))
    assert "contrastive_step4_cross_lingual_test.json" in pictures
    again = evaluate_checkpoint.evaluate_latest(config, workdir)
    ours = {k: v for k, v in metrics.items() if k.startswith(("zeroshot/", "retrieval/"))}
    assert again["step"] == 4 and {k: again[k] for k in ours} == ours

    # The evaluator's image embeddings are the split's images in file order.
    task = tasks.get_task("contrastive")(config, workdir)
    _, params = runs.final_params(workdir)
    mesh = mesh_lib.mesh_from_config(config.parallel)
    ordered = task.evaluator.split_image_embeddings(params, mesh, "test")
    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir)
    images = np.stack([ex["image"] for ex in tfds.as_numpy(builder.as_dataset(split="test"))])
    direct = task.model.apply({"params": params}, (images[:8] / 255.0 - 0.5) / 0.5,
                              method=type(task.model).encode_image)
    np.testing.assert_allclose(ordered[:8], np.asarray(jax.device_get(direct)), atol=1e-5)
