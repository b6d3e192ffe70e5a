"""The classification step: pmap == mesh == one device (with label smoothing and mixup/cutmix),
fine-tuning from a contrastive checkpoint's image tower with a frozen tower or layer-wise lr
decay, LiT on the contrastive task, and a run end to end with ``train.evaluate``'s metrics."""

import os

import jax
import ml_collections
import numpy as np
import pytest

from multimodal_jax import tasks
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import prerequisites
from multimodal_jax.tasks import classification
from multimodal_jax.tasks import contrastive
from multimodal_jax.tasks import optim
from tests import tiny

NUM_CLASSES = tiny.NUM_CLASSES


tiny_config = tiny.tiny_classification_config


def _run(config, driver_name, devices, steps=3, state=None):
    state = state or classification.create_state(
        config, classification.build_model(config), jax.random.key(0))
    driver = drivers.make_driver(driver_name, classification.make_train_step(config),
                                  mesh=mesh_lib.data_mesh(devices))
    dstate = driver.put_state(state)
    for step in range(steps):
        batch = tiny.fake_batch(config.batch_size, config.data.image_size, 4, seed=step)
        del batch["tokens"]
        dstate, metrics = driver.step(dstate, driver.put_batch(batch), jax.random.key(1))
    return jax.device_get(driver.get_state(dstate).params), jax.device_get(metrics)


def test_pmap_equals_mesh_equals_single_device():
    """With label smoothing and mixup/CutMix on: the pairs and their mixing are global."""
    config = tiny_config(label_smoothing=0.1)
    config.mix.kind = "both"
    single, m1 = _run(config, "mesh", jax.devices()[:1])
    mesh, m8 = _run(config, "mesh", jax.devices())
    pmap, mp = _run(config, "pmap", jax.devices())
    for metrics in (m8, mp):
        np.testing.assert_allclose(metrics["loss"], m1["loss"], rtol=1e-5)
        np.testing.assert_allclose(metrics["top1"], m1["top1"], atol=1e-6)
    init = classification.create_state(config, classification.build_model(config),
                                       jax.random.key(0)).params
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), single, init))
    assert max(moved) > 1e-4  # training changed the parameters, so equality means something
    for other in (mesh, pmap):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     other, single)


def test_mixing_keeps_target_mass_and_changes_images():
    batch = tiny.fake_batch(8, 16, 4)
    targets = classification.dense_targets(batch["label"], NUM_CLASSES)
    for kind in ("mixup", "cutmix"):
        mixed, mixed_targets = jax.jit(jax.shard_map(
            lambda x, t, kind=kind: classification.mix_pairs(x, t, jax.random.key(0), kind, 1.0),
            mesh=mesh_lib.data_mesh(jax.devices()[:1]), in_specs=jax.sharding.PartitionSpec("data"),
            out_specs=jax.sharding.PartitionSpec("data")))(batch["image"], targets)
        np.testing.assert_allclose(np.sum(mixed_targets, axis=1), 1.0, rtol=1e-6)
        assert np.abs(np.asarray(mixed) - batch["image"]).max() > 0.1, kind
        # The own class keeps the share of the own pixels (cutmix) or lam (mixup): > 0.
        own = np.take_along_axis(np.asarray(mixed_targets), batch["label"][:, None], 1)
        assert (own > 0).all() or kind == "cutmix"


def test_multilabel_targets_and_topk():
    labels = np.array([[1, 3], [2, -1]], np.int32)
    targets = np.asarray(classification.dense_targets(labels, 5))
    np.testing.assert_array_equal(targets, [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]])
    logits = np.array([[0, 0, 0, 5, 1.0], [5, 0, 1, 0, 0]], np.float32)
    np.testing.assert_array_equal(classification.topk_correct(logits, targets, 1), [1, 0])
    np.testing.assert_array_equal(classification.topk_correct(logits, targets, 2), [1, 1])


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A workdir holding a (randomly initialised) tiny contrastive checkpoint, and its params."""
    config = tiny.tiny_contrastive_config()
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    state = contrastive.create_state(config, model, jax.random.key(7))
    workdir = tmp_path_factory.mktemp("clip")
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), async_save=False)
    ckpt.save(jax.device_put(state, mesh_lib.replicated(mesh_lib.data_mesh())))
    ckpt.close()
    return str(workdir), jax.device_get(state.params)


def test_frozen_tower_from_contrastive_checkpoint_is_unchanged(clip_run):
    workdir, clip_params = clip_run
    config = tiny_config(init_from=f"workdir:{workdir}", freeze_tower=True)
    state = classification.create_state(config, classification.build_model(config),
                                        jax.random.key(0))
    tower = {k: v for k, v in jax.device_get(state.params).items() if k != "head"}
    jax.tree.map(np.testing.assert_array_equal, tower, clip_params["image_tower"])
    trained, _ = _run(config, "mesh", jax.devices(), steps=3, state=state)
    jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in trained.items() if k != "head"},
                 clip_params["image_tower"])
    assert np.abs(trained["head"]["kernel"]).max() > 1e-4  # the head did train


def test_layerwise_lr_decay_scales_lower_layers_less():
    config = tiny_config()
    config.optim.layer_decay = 0.5
    config.optim.weight_decay, config.optim.warmup_steps = 0.0, 0  # lr > 0 at step 0
    state = classification.create_state(config, classification.build_model(config),
                                        jax.random.key(0))
    grads = jax.tree.map(np.ones_like, jax.device_get(state.params))
    updates, _ = state.tx.update(grads, state.opt_state, state.params)
    first = lambda tree: float(np.abs(jax.tree.leaves(tree)[0]).max())  # noqa: E731
    head, block1 = first(updates["head"]), first(updates["encoder"]["block_1"])
    block0, embedding = first(updates["encoder"]["block_0"]), first(updates["embedding"])
    np.testing.assert_allclose([block1 / head, block0 / head, embedding / head],
                               [0.5, 0.25, 0.125], rtol=1e-5)
    assert optim.vit_layer_id((jax.tree_util.DictKey("posemb"),), 2) == 0


def test_init_from_reports_mismatch_and_resizes_position_embeddings(clip_run):
    workdir, _ = clip_run
    wider = tiny_config(init_from=workdir)
    wider.model.image.width = 48
    with pytest.raises(ValueError, match="embedding"):
        classification.create_state(wider, classification.build_model(wider), jax.random.key(0))
    bigger = tiny_config(init_from=workdir)
    bigger.data.image_size = 32  # 8x8 patches instead of the checkpoint's 4x4
    params = classification.create_state(bigger, classification.build_model(bigger),
                                         jax.random.key(0)).params
    assert params["posemb"]["pos_embedding"].shape == (1, 64, 32)
    with pytest.raises(ValueError, match="unknown kind"):
        init_from.parse("hf_clap:/x")


def test_lit_locks_the_image_tower(clip_run):
    workdir, clip_params = clip_run
    config = tiny.tiny_contrastive_config()
    config.init_from = f"workdir:{workdir}"
    config.lock_image_tower = True
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    state = contrastive.create_state(config, model, jax.random.key(3))
    initial = jax.device_get(state.params)  # the driver donates the state's buffers
    driver = drivers.make_driver("mesh", contrastive.make_train_step(config))
    dstate = driver.put_state(state)
    for step in range(2):
        batch = tiny.fake_batch(config.batch_size, 16, config.tokenizer.max_len, seed=step)
        dstate, _ = driver.step(dstate, driver.put_batch(batch), jax.random.key(0))
    trained = jax.device_get(driver.get_state(dstate).params)
    jax.tree.map(np.testing.assert_array_equal, trained["image_tower"], clip_params["image_tower"])
    jax.tree.map(np.testing.assert_array_equal, trained["img_proj"],  # fresh, and locked too
                 initial["img_proj"])
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), trained["text_tower"],
                         initial["text_tower"])
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_finetune_then_evaluate_on_builtin_dataset(shapes_data_dir, tmp_path, clip_run):
    """Fine-tuned from a CLIP run named as a prerequisite (as configs/vit_shapes_finetune.py
    does); once the run has its own checkpoint, resuming and evaluating restore it without
    reading the pretrained weights again."""
    config = tiny_config(init_from="clip")
    config.prerequisites = ml_collections.ConfigDict(dict(
        clip=dict(workdir=clip_run[0], config=tiny.tiny_contrastive_config())))
    resolved = prerequisites.resolve(config, str(tmp_path))
    assert resolved.init_from == clip_run[0] and config.init_from == "clip"
    config.data.name, config.data.data_dir = "captioned_shapes/tiny", shapes_data_dir
    config.num_classes = 64
    config.data.shuffle_buffer = 256
    config.total_steps, config.checkpoint_every_steps = 4, 4
    config.log_every_steps, config.eval_every_steps = 2, 4
    config.evaluation.batch_size = 64
    config.evaluation.linear_probe.methods = ("ridge",)
    config.evaluation.linear_probe.train_examples = 256
    workdir = str(tmp_path / "run")
    assert tasks.get_task("classification")(config, workdir).pretrained
    metrics = loop.train_and_evaluate(config, workdir)
    assert not tasks.get_task("classification")(config, workdir).pretrained
    evaluated = evaluate_checkpoint.evaluate_latest(config, workdir)
    for key in ("classification/test/top1", "classification/test/top5", "probe/test/ridge_top1"):
        assert 0.0 <= evaluated[key] <= 1.0, key
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-6), key
    assert evaluated["step"] == 4
    # Single-object test images only (about 70% of the tiny test split's 128).
    assert 60 < evaluated["classification/test/examples"] < 128
    assert any(p.endswith(".png") for p in os.listdir(os.path.join(workdir, "pictures")))


def test_init_from_hf_clip_gives_the_reference_features(tmp_path):
    """``init_from="hf_clip:DIR"``: our ViT's pooled features equal transformers' CLIP vision
    pooler output, so a published tower fine-tunes as it was trained."""
    torch = pytest.importorskip("torch")
    from tests.hf_clip_reference import perturbed_clip  # noqa: PLC0415 - needs torch
    vision = dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, image_size=32, patch_size=8)
    reference = perturbed_clip(dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=2, max_position_embeddings=8),
                               vision, proj_dim=16)
    reference.save_pretrained(str(tmp_path / "hf"))
    config = tiny_config(init_from=f"hf_clip:{tmp_path / 'hf'}")
    config.data.image_size = 32
    config.model.image.update(width=32, depth=2, mlp_dim=96, num_heads=4, patch_size=8, pool="tok",
                              pre_norm=True, patch_bias=False, act="quick_gelu", ln_eps=1e-5)
    model = classification.build_model(config)
    params = classification.create_state(config, model, jax.random.key(0)).params
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    ours = model.apply({"params": params}, images)["pooled"]
    with torch.no_grad():
        theirs = reference.vision_model(pixel_values=torch.from_numpy(
            images.transpose(0, 3, 1, 2))).pooler_output.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_array_equal(params["head"]["kernel"], 0.0)  # the head is fresh
