"""Datasets beyond the registered ones: a dataset prepared by a builder this process never
registered, array_record files (read bitwise like tfrecord, resumable, sliced per process),
mixtures of prepared datasets (a pure function of seed and step), and the checks of a train
split too small for its batch."""

import io
import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import tokenizers
from multimodal_jax.runtime import config_checks
from tests import tiny

MAX_LEN = 16
TOKENIZER = tokenizers.ByteTokenizer(max_len=MAX_LEN)
CLASSES = [f"class {i}" for i in range(10)]


def _png(value: int, size=(6, 9)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _examples(prefix: str, count: int):
    """(key, example) pairs: images of one grey level each, captions naming the example."""
    for i in range(count):
        yield f"{prefix}{i}", {"image": _png(i * 5), "caption": f"{prefix} {i}", "label": i % 10}


FEATURES = tfds.features.FeaturesDict({
    "image": tfds.features.Image(shape=(None, None, 3)),
    "caption": tfds.features.Text(),
    "label": tfds.features.ClassLabel(names=CLASSES),
})


class TenClassCaptions(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Another project's builder: this process reads its output without it being registered."""

    VERSION = tfds.core.Version("1.2.0")

    def _info(self):
        return self.dataset_info_from_configs(features=FEATURES)

    def _split_generators(self, dl_manager):
        return {"train": _examples("ten", 30), "test": _examples("test", 10)}

    def _generate_examples(self, **kwargs):
        raise NotImplementedError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Datasets written by TFDS's own writers: ``alpha`` as tfrecord and as array_record (same
    examples), ``beta`` as array_record, and ``ten_class_captions`` by its own builder."""
    path = str(tmp_path_factory.mktemp("sources"))
    for name, prefix, file_format in (("alpha", "alpha", "tfrecord"), ("alpha_ar", "alpha", "array_record"),
                                      ("beta", "beta", "array_record")):
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name, version="1.0.0", features=FEATURES, data_dir=path, file_format=file_format,
            split_datasets={"train": _examples(prefix, 40), "test": _examples(prefix + "_test", 8)})
    TenClassCaptions(data_dir=path).download_and_prepare()
    return path


def _cfg(data_dir, name="alpha", **kw):
    base = dict(name=name, data_dir=data_dir, image_size=8, text_key="caption", label_key="label",
                shuffle_buffer=16, max_len=MAX_LEN)
    return datasets.default_data_config(**{**base, **kw})


def _batches(cfg, steps, batch=8, start_step=0, process_index=0, process_count=1, seed=0):
    stream = pipeline.make_train_iterator(cfg, TOKENIZER, batch, seed, start_step=start_step,
                                          process_index=process_index, process_count=process_count)
    return [next(stream) for _ in range(steps)]


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _captions(batch):
    return [TOKENIZER.decode(t) for t in batch["tokens"]]


def test_dataset_of_an_unregistered_builder_is_checked_and_read(data_dir):
    assert "ten_class_captions" not in tfds.list_builders()
    config = tiny.tiny_contrastive_config()
    config.data.update(name="ten_class_captions", data_dir=data_dir, image_size=16)
    config.batch_size = 16
    config_checks.validate(config, data_dir + "/run")  # no "is not a TFDS dataset"
    (batch,) = _batches(_cfg(data_dir, "ten_class_captions"), 1)
    assert batch["image"].shape == (8, 8, 8, 3)
    assert all(c.startswith("ten ") for c in _captions(batch))
    assert [int(c.split()[1]) % 10 for c in _captions(batch)] == batch["label"].tolist()
    config.data.name = "no_such_data"
    with pytest.raises(config_checks.ConfigError, match=r"'no_such_data' is not a TFDS dataset.*"
                       r"none is prepared in .*train.prepare"):
        config_checks.validate(config, data_dir + "/run")


def test_array_record_gives_the_tfrecord_stream_resumes_and_slices(data_dir):
    tfrecord = _batches(_cfg(data_dir, "alpha", flip=True), 7)
    array_record = _batches(_cfg(data_dir, "alpha_ar", flip=True), 7)
    assert all(_equal(a, b) for a, b in zip(tfrecord, array_record))  # 56 examples: over 1 epoch
    resumed = _batches(_cfg(data_dir, "alpha_ar", flip=True), 2, start_step=5)
    assert _equal(resumed[0], array_record[5]) and _equal(resumed[1], array_record[6])
    halves = [_batches(_cfg(data_dir, "alpha_ar", flip=True), 7, process_index=p, process_count=2)
              for p in range(2)]
    for step, whole in enumerate(array_record):
        assert _equal({k: np.concatenate([h[step][k] for h in halves]) for k in whole}, whole)
    evaluated = list(pipeline.make_eval_iterator(_cfg(data_dir, "alpha_ar"), "test", TOKENIZER, 8,
                                                 process_index=0, process_count=1))
    assert [c for b in evaluated for c in _captions(b)] == [
        c for b in pipeline.make_eval_iterator(_cfg(data_dir, "alpha"), "test", TOKENIZER, 8,
                                               process_index=0, process_count=1) for c in _captions(b)]


MIXTURE = (("alpha", 3.0), ("beta", 1.0))


def test_mixture_is_a_pure_function_of_seed_and_step(data_dir):
    cfg = _cfg(data_dir, mixture=MIXTURE)
    whole = _batches(cfg, 8, batch=16)
    sources = [c.split()[0] for b in whole for c in _captions(b)]
    assert set(sources) == {"alpha", "beta"}
    assert 0.6 < sources.count("alpha") / len(sources) < 0.9  # weights 3:1 over 128 draws
    resumed = _batches(cfg, 3, batch=16, start_step=5)
    assert all(_equal(a, b) for a, b in zip(resumed, whole[5:]))
    for count in (2, 4):
        parts = [_batches(cfg, 8, batch=16, process_index=p, process_count=count) for p in range(count)]
        for step, batch in enumerate(whole):
            assert _equal({k: np.concatenate([p[step][k] for p in parts]) for k in batch}, batch)
    other_seed = _batches(cfg, 8, batch=16, seed=1)
    assert not all(_equal(a, b) for a, b in zip(whole, other_seed))


def test_mixture_checks(data_dir):
    config = tiny.tiny_contrastive_config()
    config.data.update(name="alpha", data_dir=data_dir, mixture=MIXTURE)
    config.batch_size = 16
    config_checks.validate(config, data_dir + "/run")
    for mixture, message in [((("alpha", 0),), "must be \\(name, weight\\)"),
                             ((("alpha", 1.0), ("alpha", 2.0)), "names \\['alpha'\\] more than once"),
                             ((("alpha", 1.0), ("gamma", 1.0)), "mixture: 'gamma' is not a TFDS dataset"),
                             (("alpha", "beta"), "entry 'alpha' must be \\(name, weight\\)")]:
        config.data.mixture = mixture
        with pytest.raises(config_checks.ConfigError, match=message):
            config_checks.validate(config, data_dir + "/run")


def test_split_smaller_than_a_batch_is_an_error_and_repeats_are_reported(data_dir, caplog):
    config = tiny.tiny_contrastive_config()
    config.data.update(name="alpha_ar", data_dir=data_dir, train_split="train[:10]")
    config.batch_size = 16
    with pytest.raises(config_checks.ConfigError, match=r"train\[:10\]'.*has 10 examples, fewer "
                       r"than one global batch \(config.batch_size=16\).*batch_size <= 10"):
        config_checks.validate(config, data_dir + "/run")
    config.data.update(name="alpha", mixture=(("alpha", 1.0), ("beta", 7.0)), train_split="train[:4]")
    with pytest.raises(config_checks.ConfigError, match=r"fewer than its share of a global batch \(14\)"):
        config_checks.validate(config, data_dir + "/run")
    config.data.train_split = "validation"
    with pytest.raises(config_checks.ConfigError, match=r"'validation' is not a split of 'alpha'.*'test', 'train'"):
        config_checks.validate(config, data_dir + "/run")
    with caplog.at_level(logging.WARNING, logger="multimodal_jax"):
        _batches(_cfg(data_dir, train_split="train[:24]"), 3, batch=8)  # buffer 16 spans epochs
    repeated = [r.getMessage() for r in caplog.records if "copies of others" in r.getMessage()]
    assert len(repeated) == 1 and "of the 8 examples of the global batch" in repeated[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multimodal_jax"):
        _batches(_cfg(data_dir, shuffle_buffer=1), 5, batch=8)  # file order: no repeats
    assert not [r for r in caplog.records if "copies of others" in r.getMessage()]
