"""Classification input on real datasets' specs (``tfds.testing.mock_data``: cifar10, and
imagenet2012 with images of varied sizes): inception crop + flip + resize, a few train steps
and an evaluation; the augmentation's determinism; the train filter and multi-label keys on the
built-in dataset."""

import functools

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from multimodal_jax.data import augment
from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.evaluation import classification_eval
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.tasks import classification
from tests import tiny


def _mock(num_examples=24):
    return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                                  num_examples=num_examples)


def _config(name: str, num_classes: int):
    config = tiny.tiny_classification_config(num_classes=num_classes, label_smoothing=0.1)
    config.data.update(name=name, train_filter=None, augment="inception_crop", flip=True,
                       crop_area_min=0.3, shuffle_buffer=32, mean=datasets.CLIP_MEAN,
                       std=datasets.CLIP_STD)
    config.mix.kind = "cutmix"
    config.evaluation.update(filter=(), batch_size=16)
    return config


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("imagenet2012", 1000)])
def test_train_steps_and_evaluation_on_mock_datasets(name, num_classes):
    config = _config(name, num_classes)
    mesh = mesh_lib.data_mesh()
    model = classification.build_model(config)
    state = classification.create_state(config, model, jax.random.key(0))
    driver = drivers.make_driver("mesh", classification.make_train_step(config), mesh)
    dstate = driver.put_state(state)
    with _mock():
        batches = pipeline.make_train_iterator(config.data, None, config.batch_size, config.seed)
        for _ in range(3):
            batch = next(batches)
            assert batch["image"].shape == (16, 16, 16, 3) and batch["image"].dtype == np.float32
            assert batch["label"].shape == (16,) and batch["label"].max() < num_classes
            dstate, metrics = driver.step(dstate, driver.put_batch(batch), jax.random.key(0))
        assert np.isfinite(float(metrics["loss"])) and float(metrics["loss"]) > 0
        predict = jax.jit(functools.partial(classification.eval_step, apply_fn=model.apply,
                                            num_classes=num_classes))
        split = "validation" if name == "imagenet2012" else "test"
        values, _ = classification_eval.split_metrics(
            predict, driver.get_state(dstate).params, config, split, mesh)
    assert values[f"classification/{split}/examples"] == 24
    assert 0 <= values[f"classification/{split}/top1"] <= values[f"classification/{split}/top5"] <= 1


def test_inception_crop_any_size_deterministic_per_seed():
    image = tf.constant(np.random.default_rng(0).integers(0, 255, (37, 61, 3)), tf.uint8)
    seed = lambda i: tf.constant([0, i], tf.int64)  # noqa: E731
    a, b, c = (augment.inception_crop(image, 24, seed(i)).numpy() for i in (1, 1, 2))
    assert a.shape == (24, 24, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1.0
    assert augment.train_image(image, 24, "none", seed(1)) is None
    with pytest.raises(ValueError, match="inception_crop"):
        augment.check_augment("randaug")


def test_train_filter_and_multilabel_keys_on_builtin(shapes_data_dir):
    cfg = datasets.default_data_config(
        name="captioned_shapes/tiny", data_dir=shapes_data_dir, label_key="label", image_size=16,
        shuffle_buffer=64, train_filter=("num_objects", 1))
    batch = next(pipeline.make_train_iterator(cfg, None, 256, 0, process_index=0, process_count=1))
    assert batch["label"].shape == (256,)
    cfg_all = datasets.default_data_config(**{**cfg.to_dict(), "train_filter": None,
                                              "extra_label_keys": ("label2",)})
    pairs = next(pipeline.make_train_iterator(cfg_all, None, 256, 0, process_index=0,
                                              process_count=1))["label"]
    assert pairs.shape == (256, 2)
    single = pairs[:, 1] == -1
    assert 0.5 < single.mean() < 0.9  # about 70% single-object images in the full stream
    filtered = next(pipeline.make_train_iterator(
        datasets.default_data_config(**{**cfg_all.to_dict(), "train_filter": ("num_objects", 1)}),
        None, 256, 0, process_index=0, process_count=1))["label"]
    assert (filtered[:, 1] == -1).all()  # the filter keeps single-object images only
    with pytest.raises(ValueError, match="data.train_filter"):
        next(pipeline.make_train_iterator(
            datasets.default_data_config(**{**cfg.to_dict(), "train_filter": ("objects", 1)}),
            None, 8, 0, process_index=0, process_count=1))


def test_train_filter_off_from_the_command_line():
    """On the command line a tuple field reads ``None`` as ``('None',)``: that is refused with
    the form that works, ``'()'``, which turns the filter off like ``None``."""
    config = datasets.default_data_config(name="captioned_shapes/32px",
                                          train_filter=("num_objects", 1))
    config.train_filter = ()
    datasets.check_config(config, prepared=False)
    config.train_filter = ("None",)
    with pytest.raises(ValueError, match=r"--config.data.train_filter='\(\)'"):
        datasets.check_config(config, prepared=False)
