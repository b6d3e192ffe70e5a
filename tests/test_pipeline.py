"""The input pipeline on mocked TFDS datasets (cifar10: label -> caption templates; coco_captions:
nested caption lists, variable image sizes): same stream for any process count, exact resume,
padded eval with a mask, clear errors; and the host -> device helpers on 8 CPU devices."""

import functools

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from multimodal_jax.data import datasets
from multimodal_jax.data import device_input
from multimodal_jax.data import pipeline
from multimodal_jax.data import tokenizers

MAX_LEN = 24
COCO_EXAMPLES = 20
TOKENIZER = tokenizers.ByteTokenizer(max_len=MAX_LEN)


def _cifar_cfg(**kw):
    base = dict(name="cifar10", label_key="label", image_size=16, shuffle_buffer=64, max_len=MAX_LEN,
                caption_templates=("a photo of a {}.", "a {}."))
    return datasets.default_data_config(**{**base, **kw})


def _coco_cfg(**kw):
    base = dict(name="coco_captions", text_key="captions/text", image_size=16, shuffle_buffer=64,
                max_len=MAX_LEN, eval_splits=("val",))
    return datasets.default_data_config(**{**base, **kw})


def _coco_as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **_):
    """coco_captions examples with 1-5 captions "caption {i} {j}" and images of varied sizes
    (TFDS's random mock cannot make its nested sequences consistent)."""
    features = self.info.features

    def dense(x):  # encode_example gives Sequence features as lists of per-element arrays.
        if isinstance(x, dict):
            return {k: dense(v) for k, v in x.items()}
        return np.stack([np.asarray(v) for v in x]) if isinstance(x, list) else x

    def examples():
        rng = np.random.default_rng(0)
        for i in range(COCO_EXAMPLES):
            h, w = (int(v) for v in rng.integers(12, 40, size=2))
            n = int(rng.integers(1, 6))
            yield dense(features.encode_example({
                "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "image/filename": f"{i}.jpg", "image/id": i,
                "captions": {"id": list(range(n)), "text": [f"caption {i} {j}" for j in range(n)]},
                "objects": {"area": [1], "bbox": [tfds.features.BBox(0.1, 0.1, 0.5, 0.5)], "id": [i],
                            "is_crowd": [False], "label": [0]},
            }))

    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.tf_dtype), features.get_serialized_info())
    ds = tf.data.Dataset.from_generator(examples, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(COCO_EXAMPLES))
    return ds.map(functools.partial(features.decode_example, decoders=decoders))


def _mock(num_examples=16, **kw):
    return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=num_examples, **kw)


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _train(cfg, batch=8, seed=0, **kw):
    return pipeline.make_train_iterator(cfg, TOKENIZER, batch, seed, **kw)


def _eval(cfg, batch, split="test", **kw):
    return list(pipeline.make_eval_iterator(cfg, split, TOKENIZER, batch, **kw))


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_cifar10_captions_from_label_templates():
    with _mock():
        (batch,) = _take(_train(_cifar_cfg(), process_index=0, process_count=1), 1)
        names = tfds.builder("cifar10").info.features["label"].names
    assert batch["image"].shape == (8, 16, 16, 3) and batch["image"].dtype == np.float32
    assert batch["tokens"].shape == (8, MAX_LEN) and batch["tokens"].dtype == np.int32
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
    for tokens, label in zip(batch["tokens"], batch["label"]):
        assert TOKENIZER.decode(tokens) in {f"a photo of a {names[label]}.", f"a {names[label]}."}
    # Normalised with CLIP's statistics: [0, 255] maps to about [-1.8, 2.2].
    assert -1.9 < batch["image"].min() < batch["image"].max() < 2.2


def test_coco_nested_captions_and_variable_image_sizes():
    with _mock(as_dataset_fn=_coco_as_dataset):
        batches = _take(_train(_coco_cfg(), batch=4, process_index=0, process_count=1), 5)
        (first,) = _eval(_coco_cfg(), COCO_EXAMPLES, split="val", process_index=0, process_count=1)
    for batch in batches:
        assert batch["image"].shape == (4, 16, 16, 3) and "label" not in batch
        assert all(TOKENIZER.decode(t).startswith("caption ") for t in batch["tokens"])
    # Training picks a caption per example (seeded), not always the first; eval takes the first.
    picked = [TOKENIZER.decode(t).split()[2] for b in batches for t in b["tokens"]]
    assert set(picked) != {"0"}
    assert [TOKENIZER.decode(t) for t in first["tokens"]] == [f"caption {i} 0" for i in range(COCO_EXAMPLES)]


def test_same_seed_same_stream_other_seed_other_stream():
    with _mock():
        a = _take(_train(_cifar_cfg(), seed=1, process_index=0, process_count=1), 3)
        b = _take(_train(_cifar_cfg(), seed=1, process_index=0, process_count=1), 3)
        c = _take(_train(_cifar_cfg(), seed=2, process_index=0, process_count=1), 3)
    assert all(_equal(x, y) for x, y in zip(a, b))
    assert not all(_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_slices_concatenate_to_the_single_process_batch(process_count):
    steps = 5  # 40 examples of a 16-example split: crosses epoch boundaries.
    with _mock(as_dataset_fn=_coco_as_dataset):
        whole = _take(_train(_coco_cfg(), process_index=0, process_count=1), steps)
        parts = [_take(_train(_coco_cfg(), process_index=p, process_count=process_count), steps)
                 for p in range(process_count)]
    for step in range(steps):
        joined = {k: np.concatenate([part[step][k] for part in parts]) for k in whole[step]}
        assert _equal(joined, whole[step])


def test_start_step_resumes_the_exact_stream():
    with _mock():
        uninterrupted = _take(_train(_cifar_cfg(flip=True), process_index=0, process_count=1), 5)
        resumed = _take(_train(_cifar_cfg(flip=True), start_step=3, process_index=0, process_count=1), 2)
        resumed_p1 = _take(_train(_cifar_cfg(flip=True), start_step=3, process_index=1, process_count=2), 2)
    assert _equal(resumed[0], uninterrupted[3]) and _equal(resumed[1], uninterrupted[4])
    assert np.array_equal(resumed_p1[1]["image"], uninterrupted[4]["image"][4:])


def test_eval_is_one_padded_pass_split_contiguously_over_processes():
    with _mock(num_examples=13):
        single = _eval(_cifar_cfg(), 4, process_index=0, process_count=1)
        parts = [_eval(_cifar_cfg(), 4, process_index=p, process_count=2) for p in range(2)]
    assert len(single) == 4 and [len(p) for p in parts] == [4, 4]  # 7 + 6 examples, 2 per batch
    assert single[-1]["mask"].tolist() == [True, False, False, False]

    def masked(batches, k):
        return np.concatenate([b[k][b["mask"]] for b in batches])

    for key in ("image", "tokens", "label"):
        assert np.array_equal(np.concatenate([masked(p, key) for p in parts]), masked(single, key))
    assert [int(b["mask"].sum()) for b in parts[1]] == [2, 2, 2, 0]
    assert not parts[1][-1]["image"].any()


def test_eval_filter_keeps_matching_examples_only():
    with _mock(num_examples=30):
        every = _eval(_cifar_cfg(), 8, process_index=0, process_count=1)
        labels = np.concatenate([b["label"][b["mask"]] for b in every])
        wanted = int(labels[0])
        kept = _eval(_cifar_cfg(), 8, filter=("label", wanted), process_index=0, process_count=1)
    kept_labels = np.concatenate([b["label"][b["mask"]] for b in kept])
    assert (kept_labels == wanted).all() and len(kept_labels) == (labels == wanted).sum()


def test_builtin_shapes_dataset_is_prepared_and_read(tmp_path):
    cfg = datasets.default_data_config(name="captioned_shapes/tiny", data_dir=str(tmp_path), image_size=32,
                                       text_key="caption", label_key="label", max_len=MAX_LEN)
    datasets.ensure_prepared(cfg)
    (batch,) = _take(_train(cfg, batch=16, process_index=0, process_count=1), 1)
    assert batch["image"].shape == (16, 32, 32, 3) and batch["label"].shape == (16,)
    assert all(TOKENIZER.decode(t) for t in batch["tokens"])
    batches = _eval(cfg, 64, filter=("num_objects", 1), process_index=1, process_count=2)
    assert len(batches) >= 1 and all(b["image"].shape == (32, 32, 32, 3) for b in batches)


def test_resize_shorter_side_then_centre_crop():
    columns = tf.broadcast_to(tf.range(40, dtype=tf.float32)[None, :, None], [20, 40, 3])
    out = pipeline._resize_and_centre_crop(columns, 10).numpy()
    assert out.shape == (10, 10, 3) and abs(out.mean() - 19.5) < 0.5  # the middle half of the columns
    same = tf.random.uniform([10, 10, 3], 0, 255)
    assert np.array_equal(pipeline._resize_and_centre_crop(same, 10).numpy(), same.numpy())


def test_clear_errors(tmp_path):
    with _mock():
        with pytest.raises(ValueError, match="Unknown TFDS dataset 'no_such_dataset'"):
            _train(_cifar_cfg(name="no_such_dataset"), process_index=0, process_count=1)
        with pytest.raises(ValueError, match=r"data.image_key='img'.*Available features: id, image, label"):
            _train(_cifar_cfg(image_key="img"), process_index=0, process_count=1)
        with pytest.raises(ValueError, match=r"data.label_key='lbl'.*Available features"):
            _train(_cifar_cfg(label_key="lbl"), process_index=0, process_count=1)
        with pytest.raises(ValueError, match="multiple of the number of processes"):
            _train(_cifar_cfg(), batch=9, process_index=0, process_count=2)
    with _mock(as_dataset_fn=_coco_as_dataset):
        with pytest.raises(ValueError, match=r"data.text_key='caption'.*captions/text"):
            _train(_coco_cfg(text_key="caption"), process_index=0, process_count=1)
    cfg = _cifar_cfg(data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not prepared.*tfds build cifar10"):
        _train(cfg, process_index=0, process_count=1)
    with pytest.raises(FileNotFoundError, match="not prepared"):
        datasets.ensure_prepared(cfg)


def test_shard_for_pmap_is_taken_by_pmap_without_a_copy():
    batch = {"image": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "label": np.arange(16)}
    sharded = device_input.shard_for_pmap(batch, 8)
    assert sharded["image"].shape == (8, 2, 3)
    # Same-shaped outputs so the donated input buffers are reusable.
    out = jax.pmap(lambda b: {"image": b["image"] * 2, "label": b["label"] + 1}, donate_argnums=0)(sharded)
    assert np.array_equal(out["image"].reshape(16, 3), batch["image"] * 2)
    assert np.array_equal(out["label"].reshape(16), batch["label"] + 1)
    assert sharded["image"].is_deleted()  # donated as is: pmap did not reshard a copy
    with pytest.raises(ValueError, match="does not split evenly over its 8 local devices"):
        device_input.shard_for_pmap({"x": np.zeros((12, 2))}, 8)


def test_shard_for_mesh_builds_the_global_batch():
    mesh = jax.make_mesh((4, 2), ("data", "model"))
    batch = {"image": np.arange(8 * 2, dtype=np.float32).reshape(8, 2)}
    out = device_input.shard_for_mesh(batch, mesh)["image"]
    assert out.shape == (8, 2) and out.sharding.spec == jax.sharding.PartitionSpec("data")
    assert np.array_equal(np.asarray(out), batch["image"])
    with pytest.raises(ValueError, match="does not split evenly"):
        device_input.shard_for_mesh({"x": np.zeros((6, 2))}, mesh)


def test_prefetch_keeps_size_batches_in_flight_and_keeps_order():
    put = []
    stream = device_input.prefetch(iter(range(5)), lambda b: put.append(b) or b * 10, size=2)
    assert next(stream) == 0 and put == [0, 1, 2]
    assert list(stream) == [10, 20, 30, 40] and put == [0, 1, 2, 3, 4]
