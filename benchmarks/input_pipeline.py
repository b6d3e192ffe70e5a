"""Input-pipeline headroom: images/s the TFDS pipeline delivers against what the train step eats.

Run (figures in README.md, "Performance"):
  python -m benchmarks.input_pipeline            # all three sources
  python -m benchmarks.input_pipeline --quick    # smoke test
  python -m benchmarks.input_pipeline --sources builtin

Sources, each with the train step it feeds (as ``python -m train`` runs it: non-finite guard,
mesh driver):
  builtin         the main job, ``configs/clip_shapes.py``: built-in ``captioned_shapes/32px``
                  (prepared in the TFDS data dir if missing), SentencePiece captions, 32 px;
                  its contrastive step at its batch of 256.
  imagenet_mock   ``configs/vit_b16_imagenet.py``'s input (inception crop, flip, 224 px) on
                  ``tfds.testing.mock_data`` of imagenet2012's spec (TFDS's random JPEGs of
                  5-50 px a side); its ViT-B/16 classification step at 224 px (float32 on CPU,
                  the config's dtype elsewhere), batch ``--imagenet-batch``.
  imagenet_sized  the same, with the mock examples made ImageNet-sized: 500x375 JPEGs (the
                  dataset's typical size), so decoding costs what it costs on the real thing.
The imagenet sources use a shuffle buffer of 2048 (the config's 50,000 would only lengthen the
start and hold GBs of mock JPEGs; it does not change the steady-state rate).

Three figures per source, measured one after the other: the step alone on one batch already
on the device; the pipeline alone (batches/s after warm-up, nothing else running); and the step
fed by the pipeline through ``device_input.prefetch`` as the training loop does. The pipeline
and the step share the same cores, so "fed" is the figure that matters; "headroom" is
pipeline / step.
"""

from benchmarks import common

THREADS = common.set_threads()  # before torch / jax / tf start their thread pools

import contextlib  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from multimodal_jax.configs import clip_shapes  # noqa: E402
from multimodal_jax.configs import vit_b16_imagenet  # noqa: E402
from multimodal_jax.data import datasets  # noqa: E402
from multimodal_jax.data import device_input  # noqa: E402
from multimodal_jax.data import pipeline  # noqa: E402
from multimodal_jax.data import vocab  # noqa: E402
from multimodal_jax.tasks import classification  # noqa: E402
from multimodal_jax.tasks import contrastive  # noqa: E402

SOURCES = ("builtin", "imagenet_mock", "imagenet_sized")
IMAGENET_SHUFFLE = 2048
SIZED_EXAMPLES, SIZED_HW = 256, (375, 500)


# ----------------------------------------------------------------------------- sources


def builtin_source(workdir: str):
    """(config, tokenizer, data context) of the main job on the built-in dataset."""
    config = clip_shapes.get_config()
    datasets.ensure_prepared(config.data)
    return config, vocab.ensure_tokenizer(config, workdir), contextlib.nullcontext()


def imagenet_config(batch: int):
    config = vit_b16_imagenet.get_config()
    config.batch_size = batch
    config.data.shuffle_buffer = IMAGENET_SHUFFLE
    if jax.devices()[0].platform == "cpu":
        config.model.dtype = "float32"
    return config


def imagenet_mock_source(batch: int):
    """TFDS's own mock imagenet2012 (random small JPEGs)."""
    mock = tfds.testing.mock_data(num_examples=4096, policy=tfds.testing.MockPolicy.USE_CODE)
    return imagenet_config(batch), None, mock


def imagenet_sized_source(batch: int):
    """Mock imagenet2012 whose images are 500x375 JPEGs of smooth random content."""
    features = tfds.builder("imagenet2012", data_dir="/tmp/non-existing").info.features
    rng = np.random.default_rng(0)
    encoded = []
    for i in range(SIZED_EXAMPLES):
        coarse = rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)
        image = tf.image.resize(coarse[None], SIZED_HW, method="bicubic")[0].numpy()
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        encoded.append(features.encode_example(
            {"image": image, "label": i % 1000, "file_name": f"{i}.JPEG"}))
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.tf_dtype),
                                 features.get_serialized_info())

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del self, split, read_config, kwargs
        ds = tf.data.Dataset.from_generator(lambda: iter(encoded), output_signature=spec)
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(encoded)))
        return ds.map(lambda ex: features.decode_example(ex, decoders=decoders))

    mock = tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset)
    return imagenet_config(batch), None, mock


def train_parts(config, tokenizer):
    """(state, pure step) of the config's task, fresh parameters."""
    rng = jax.random.key(config.seed)
    if config.task == "contrastive":
        model = contrastive.build_model(config, tokenizer)
        return contrastive.create_state(config, model, rng), contrastive.make_train_step(config)
    model = classification.build_model(config)
    return classification.create_state(config, model, rng), classification.make_train_step(config)


# ----------------------------------------------------------------------------- measuring


def rate_of(fn, items: int, rounds: int, steps: int) -> common.Rate:
    """Items/s of ``fn()`` (one batch of ``items``) over ``rounds`` rounds of ``steps`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            out = fn()
        common.jax_sync(out)
        times.append((time.perf_counter() - start) / steps)
    return common.Rate.of(times, items)


def measure(config, tokenizer, data_context, rounds: int, steps: int, warmup: int) -> dict:
    """Step alone, pipeline alone, and step fed by the pipeline, for one source."""
    batch_size = config.batch_size
    state, step = train_parts(config, tokenizer)
    with data_context:
        batches = pipeline.make_train_iterator(config.data, tokenizer, batch_size, config.seed)
        first = next(batches)
        del batches  # nothing runs in the background while the step is timed alone
        runner = common.TrainRunner(step, state)
        fixed = runner.put_batch(first)
        for _ in range(warmup):
            common.jax_sync(runner(fixed))
        alone = rate_of(lambda: runner(fixed), batch_size, rounds, steps)

        batches = pipeline.make_train_iterator(config.data, tokenizer, batch_size, config.seed)
        for _ in range(max(warmup, 2)):  # fills the shuffle buffer and the autotuned prefetch
            next(batches)
        source = rate_of(lambda: next(batches), batch_size, rounds, 4 * steps)

        fed_batches = device_input.prefetch(batches, runner.put_batch)
        for _ in range(warmup):
            common.jax_sync(runner(next(fed_batches)))
        fed = rate_of(lambda: runner(next(fed_batches)), batch_size, rounds, steps)
    return {"step": alone, "pipeline": source, "fed": fed, "batch": batch_size,
            "image_size": int(first["image"].shape[1])}


def main():
    parser = common.base_parser(__doc__)
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma list of {SOURCES}")
    parser.add_argument("--imagenet-batch", type=int, default=16,
                        help="batch of the ViT-B/16 step at 224 px (the config's 1024 is for pods)")
    args = parser.parse_args()
    datasets.hide_accelerators_from_tf()  # before TensorFlow's first op: its GPUs stay JAX's
    rounds, steps, warmup = common.timing_args(args)
    figures, rows = {"rounds": rounds, "steps_per_round": steps}, []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.sources.split(","):
            if name == "builtin":
                source = builtin_source(workdir)
            elif name == "imagenet_mock":
                source = imagenet_mock_source(args.imagenet_batch)
            else:
                source = imagenet_sized_source(args.imagenet_batch)
            r = measure(*source, rounds, steps, warmup)
            headroom = r["pipeline"].median / r["step"].median
            figures.update({f"{name}/step_img_s": r["step"].median,
                            f"{name}/pipeline_img_s": r["pipeline"].median,
                            f"{name}/fed_step_img_s": r["fed"].median,
                            f"{name}/headroom": headroom,
                            f"{name}/fed_over_alone": r["fed"].median / r["step"].median})
            rows.append((name, f"{r['image_size']} px", r["batch"], str(r["step"]),
                         str(r["pipeline"]), f"{headroom:.1f}x", str(r["fed"]),
                         f"{100 * r['fed'].median / r['step'].median:.0f}%"))
    common.print_table(("source", "size", "batch", "step alone img/s", "pipeline img/s",
                        "headroom", "step fed img/s", "fed / alone"), rows)
    common.emit(figures)


if __name__ == "__main__":
    main()
