"""The captioning step: pmap == mesh == one device (with CapPa's parallel prediction on),
padding does not change the loss, a locked tower from a contrastive checkpoint stays as it was,
and a run on the built-in dataset end to end with ``train.evaluate``'s metrics."""

import os

import jax
import numpy as np
import pytest

from multimodal_jax.configs import caption_coco
from multimodal_jax.configs import caption_shapes
from multimodal_jax.data import pipeline
from multimodal_jax.data import tokenizers
from multimodal_jax.evaluation import captioning_eval
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.tasks import captioning
from multimodal_jax.tasks import contrastive
from tests import tiny


class BosTokenizer(tiny.FakeTokenizer):
    bos_id = 2


tiny_config = tiny.tiny_captioning_config


def _batch(config, seed, tokenizer=tiny.FakeTokenizer, pad_to=8):
    """Random 8-token captions (with the tokenizer's bos), padded to ``pad_to`` tokens."""
    batch = tiny.fake_batch(config.batch_size, config.data.image_size, 8, seed=seed)
    if tokenizer.bos_id is not None:
        batch["tokens"] = np.concatenate([np.full((len(batch["tokens"]), 1), tokenizer.bos_id,
                                                  np.int32), batch["tokens"][:, :-1]], axis=1)
    batch["tokens"] = np.pad(batch["tokens"], ((0, 0), (0, pad_to - 8)),
                             constant_values=tokenizer.pad_id)
    return batch


def _run(config, driver_name, devices, steps=2, state=None, tokenizer=tiny.FakeTokenizer,
         pad_to=8):
    model = captioning.build_model(config, tokenizer)
    state = state or captioning.create_state(config, model, jax.random.key(0))
    step = captioning.make_train_step(config, captioning.token_ids(tokenizer, model))
    driver = drivers.make_driver(driver_name, step, mesh=mesh_lib.data_mesh(devices))
    dstate = driver.put_state(state)
    for i in range(steps):
        batch = driver.put_batch(_batch(config, i, tokenizer, pad_to))
        dstate, metrics = driver.step(dstate, batch, jax.random.key(1))
    return jax.device_get(driver.get_state(dstate).params), jax.device_get(metrics)


def test_pmap_equals_mesh_equals_single_device():
    config = tiny_config(parallel_prediction=0.5)
    model = captioning.build_model(config, tiny.FakeTokenizer)
    init = jax.device_get(captioning.create_state(config, model, jax.random.key(0)))  # host copy
    single, m1 = _run(config, "mesh", jax.devices()[:1], state=init)
    mesh, m8 = _run(config, "mesh", jax.devices(), state=init)
    pmap, mp = _run(config, "pmap", jax.devices(), state=init)
    for metrics in (m8, mp):
        np.testing.assert_allclose(metrics["loss"], m1["loss"], rtol=1e-5)
        np.testing.assert_allclose(metrics["token_accuracy"], m1["token_accuracy"], atol=1e-6)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), single, init.params))
    assert max(moved) > 1e-4  # training changed the parameters, so equality means something
    for other in (mesh, pmap):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     other, single)


def test_padding_does_not_change_the_loss():
    """The same captions padded to 8 or 12 tokens: same per-example loss, same update."""
    config = tiny_config()
    model = captioning.build_model(config, BosTokenizer)
    ids = captioning.token_ids(BosTokenizer, model)
    state = captioning.create_state(config, model, jax.random.key(0))
    short, long = _batch(config, 0, BosTokenizer), _batch(config, 0, BosTokenizer, pad_to=12)
    columns = [captioning.eval_step(state.params, short["image"], b["tokens"], apply_fn=model.apply,
                                    ids=ids) for b in (short, long)]
    np.testing.assert_allclose(columns[0], columns[1], rtol=1e-6)
    assert np.asarray(columns[0])[:, 1].min() >= 2  # every caption has targets
    host = jax.device_get(state)  # the driver donates the state it is given
    params = [_run(config, "mesh", jax.devices()[:1], steps=1, state=host, tokenizer=BosTokenizer,
                   pad_to=n)[0] for n in (8, 12)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *params)


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A workdir holding a (randomly initialised) tiny contrastive checkpoint, and its params."""
    config = tiny.tiny_contrastive_config()
    config.model.image.depth = 1
    state = contrastive.create_state(config, contrastive.build_model(config, tiny.FakeTokenizer),
                                     jax.random.key(7))
    workdir = tmp_path_factory.mktemp("clip")
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), async_save=False)
    ckpt.save(jax.device_put(state, mesh_lib.replicated(mesh_lib.data_mesh())))
    ckpt.close()
    return str(workdir), jax.device_get(state.params)


def test_locked_tower_from_contrastive_checkpoint(clip_run):
    workdir, clip_params = clip_run
    config = tiny_config(init_from=f"workdir:{workdir}", lock_image_tower=True)
    state = captioning.create_state(config, captioning.build_model(config, tiny.FakeTokenizer),
                                    jax.random.key(0))
    initial = jax.device_get(state.params)
    jax.tree.map(np.testing.assert_array_equal, initial["image_tower"], clip_params["image_tower"])
    trained, _ = _run(config, "mesh", jax.devices(), state=state)
    jax.tree.map(np.testing.assert_array_equal, trained["image_tower"], clip_params["image_tower"])
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), trained["decoder"], initial["decoder"])
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_config_checks():
    captioning.CaptioningTask.check_config(caption_coco.get_config())
    captioning.CaptioningTask.check_config(caption_shapes.get_config())
    for field, value, match in [("parallel_prediction", 1.0, "parallel_prediction"),
                                ("decoding.method", "nucleus", "decoding.method"),
                                ("model.decoder.num_heads", 5, "divisible"),
                                ("evaluation.attributes", "colours", "attributes")]:
        config = caption_shapes.get_config()
        block, _, name = field.rpartition(".")
        (config if not block else eval(f"config.{block}"))[name] = value  # noqa: S307
        with pytest.raises(ValueError, match=match):
            captioning.CaptioningTask.check_config(config)
    config = caption_shapes.get_config()
    config.model.decoder.depht = 2
    with pytest.raises(ValueError, match="depht"):
        captioning.CaptioningTask.check_config(config)


def test_train_then_evaluate_on_builtin_dataset(shapes_data_dir, tmp_path, clip_run):
    config = tiny_config(init_from=f"workdir:{clip_run[0]}", lock_image_tower=True)
    config.data.name, config.data.data_dir = "captioned_shapes/tiny", shapes_data_dir
    config.data.image_size, config.data.shuffle_buffer = 16, 256
    config.tokenizer.max_len = config.model.decoder.max_len = 16
    config.total_steps, config.checkpoint_every_steps = 3, 3
    config.log_every_steps, config.eval_every_steps = 3, 3
    config.evaluation.update(batch_size=64, splits=("test",), zeroshot_splits=("test",),
                             templates=("a {}.",))
    workdir = str(tmp_path / "run")
    metrics = loop.train_and_evaluate(config, workdir)
    evaluated = evaluate_checkpoint.evaluate_latest(config, workdir)
    assert evaluated["step"] == 3
    for key in ("attr_acc_all", "attr_acc_shape_color", "zeroshot_top1", "zeroshot_top5", "bleu4",
                "cider", "loss"):
        key = f"caption/test/{key}"
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-6), key
    top1, top5 = evaluated["caption/test/zeroshot_top1"], evaluated["caption/test/zeroshot_top5"]
    assert 0.0 <= top1 <= top5 <= 1.0
    assert evaluated["caption/test/examples"] == 128  # every test image gets a caption
    assert evaluated["caption/test/loss"] > 0
    pictures = os.listdir(os.path.join(workdir, "pictures"))
    assert "captioning_step3.png" in pictures and "captioning_eval_step3.png" in pictures
    # The references BLEU / CIDEr read line up with the evaluation stream's examples.
    tokenizer = tokenizers.SentencePieceTokenizer(os.path.join(workdir, "tokenizer.model"), 16)
    stream = [tokenizer.decode(row)
              for batch in pipeline.make_eval_iterator(config.data, "test", tokenizer, 64)
              for row, keep in zip(batch["tokens"], batch["mask"]) if keep]
    assert stream == [refs[0] for refs in captioning_eval.reference_captions(config.data, "test")]
