"""Relevance maps (``evaluation.explain``) and the pointing game: the maps mean what their names
say (gradient x input is the logit's derivative along each patch token, occlusion the logit's
drop, the rollouts the products of the recorded attention), the instrumented model computes the
plain model's numbers, the renderer's masks are the objects' pixels, and the pointing game
scores maps made to order as it must."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.data import image_files
from multimodal_jax.data import shapes_builder
from multimodal_jax.data.shapes_render import COLOR_RGB
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.evaluation import explain
from multimodal_jax.models import factory
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.runtime import config_checks
from tests import tiny

SHAPES_32 = {c.name: c for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS}["32px"]


def _model(pool: str = "map"):
    config = tiny.tiny_contrastive_config()
    config.model.image.pool = pool
    return factory.build_two_tower(config.model, "softmax", 64, 0, 1), config


@pytest.fixture(scope="module", params=["map", "tok"])
def setup(request):
    model, config = _model(request.param)
    batch = tiny.fake_batch(3, config.data.image_size, config.tokenizer.max_len)
    params = model.init(jax.random.key(0), images=batch["image"][:1], tokens=batch["tokens"][:1])["params"]
    # Perturb every leaf so that no zero-initialised parameter hides a mistake.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(tree, [x + 0.2 * jax.random.normal(k, x.shape)
                                       for x, k in zip(leaves, keys)])
    text_emb = model.apply({"params": params}, batch["tokens"], method=TwoTower.encode_text)
    return model, params, jnp.asarray(batch["image"]), text_emb


def test_instrumented_model_computes_the_same_embeddings(setup):
    model, params, images, _ = setup
    plain = model.apply({"params": params}, images, method=TwoTower.encode_image)
    recorded, _ = explain.instrumented(model).apply(
        {"params": params}, images, method=TwoTower.encode_image, mutable=["perturbations", "intermediates"])
    np.testing.assert_allclose(recorded, plain, atol=1e-6)


def test_grad_input_is_the_logits_derivative_along_each_patch_token(setup):
    model, params, images, text_emb = setup
    maps = jax.jit(lambda p, x, t: explain.relevance_maps(model, p, x, t, ("grad_input",)))(
        params, images, text_emb)["grad_input"]
    inst = explain.instrumented(model)
    _, state = inst.apply({"params": params}, images, method=TwoTower.encode_image,
                          mutable=["perturbations", "intermediates"])
    tokens = state["intermediates"]["image_tower"]["encoder"]["tokens"][0]
    grid = maps.shape[-1]
    extra = tokens.shape[1] - grid * grid
    eps, patch = 1e-3, 5  # scale patch 5's token by (1 +- eps): a central difference

    def logits(scale):
        delta = jnp.zeros_like(tokens).at[:, extra + patch].set(scale * tokens[:, extra + patch])
        perturbations = jax.tree.map(jnp.zeros_like, state["perturbations"])
        perturbations["image_tower"]["encoder"]["tokens"] = delta
        with jax.default_matmul_precision("float32"):
            return explain.pair_logits(inst, {"params": params, "perturbations": perturbations},
                                       images, text_emb)
    numeric = (logits(eps) - logits(-eps)) / (2 * eps)
    np.testing.assert_allclose(maps.reshape(len(maps), -1)[:, patch], numeric, rtol=2e-2, atol=2e-3)


def test_occlusion_is_the_logits_drop_when_a_patch_is_painted_over(setup):
    model, params, images, text_emb = setup
    maps = explain.relevance_maps(model, params, images, text_emb, ("occlusion",))["occlusion"]
    patch = model.image_tower.size()["patch_size"]
    fill = np.median(np.asarray(images).reshape(len(images), -1, 3), axis=1)
    covered = np.array(images)
    covered[:, patch:2 * patch, 2 * patch:3 * patch] = fill[:, None, None, :]  # patch (1, 2)
    base = explain.pair_logits(model, {"params": params}, images, text_emb)
    drop = base - explain.pair_logits(model, {"params": params}, covered, text_emb)
    np.testing.assert_allclose(maps[:, 1, 2], drop, atol=1e-5)


def test_rollouts_are_the_products_of_the_recorded_attention(setup):
    model, params, images, text_emb = setup
    maps = explain.relevance_maps(model, params, images, text_emb)
    values, grads = explain.recorded_values(explain.instrumented(model), params, images, text_emb)
    attn = [np.asarray(a) for a in explain._blocks(values["encoder"])]
    attn_grads = [np.asarray(g) for g in explain._blocks(grads["encoder"])]
    tokens = attn[0].shape[-1]
    flows = np.broadcast_to(np.eye(tokens), (len(images), tokens, tokens))
    weighted = flows.copy()
    for a, g in zip(attn, attn_grads):
        step = 0.5 * a.mean(axis=1) + 0.5 * np.eye(tokens)
        flows = (step / step.sum(-1, keepdims=True)) @ flows
        weighted = weighted + np.maximum(g * a, 0).mean(axis=1) @ weighted
    np.testing.assert_allclose(flows.sum(-1), 1.0, atol=1e-5)  # rows stay distributions
    if model.image_tower.pool == "map":
        probe = np.asarray(values["map_head"]["attn"]["attention"])[:, :, 0, :]
        probe_grad = np.asarray(grads["map_head"]["attn"]["attention"])[:, :, 0, :]
        plain, graded = probe.mean(axis=1), np.maximum(probe * probe_grad, 0).mean(axis=1)
        extra = 0
        np.testing.assert_allclose(maps["map_attention"].reshape(len(images), -1), plain, atol=1e-6)
        np.testing.assert_allclose(maps["map_attention"].sum(axis=(1, 2)), 1.0, atol=1e-5)
    else:  # the class token's row
        plain = graded = np.eye(tokens)[np.zeros(len(images), int)]
        extra = 1
    grid = maps["rollout"].shape[-1]
    expect = np.einsum("bt,bts->bs", plain, flows)[:, extra:].reshape(-1, grid, grid)
    np.testing.assert_allclose(maps["rollout"], expect, atol=1e-5)
    expect = np.einsum("bt,bts->bs", graded, weighted)[:, extra:].reshape(-1, grid, grid)
    np.testing.assert_allclose(maps["grad_rollout"], expect, rtol=1e-4, atol=1e-6)


def test_text_dependent_methods_change_with_the_text_and_the_others_do_not(setup):
    model, params, images, text_emb = setup
    one = explain.relevance_maps(model, params, images, text_emb)
    other = explain.relevance_maps(model, params, images, -text_emb)
    for method in explain.METHODS:
        same = np.allclose(one[method], other[method], atol=1e-6)
        assert same == (method not in explain.TEXT_DEPENDENT), method


def test_masks_are_the_objects_pixels_and_do_not_change_the_example():
    two = 0
    for index in range(40):
        plain = shapes_builder.generate_example(SHAPES_32, "test", index)
        example = shapes_builder.generate_example(SHAPES_32, "test", index, masks=True)
        masks = example.pop("masks")
        assert set(example) == set(plain)
        np.testing.assert_array_equal(example["image"], plain["image"])
        assert masks.shape == (example["num_objects"], 32, 32) and masks.dtype == bool
        colours = [example["color"]] + ([COLORS[example["color2"]]] if masks.shape[0] == 2 else [])
        for mask, colour in zip(masks, colours):
            assert mask.sum() > 15
            # Where a mask is, the pixel is that object's colour (its jitter is +-12, plus AA).
            seen = example["image"][mask].astype(float)
            assert np.abs(seen.mean(0) - COLOR_RGB[colour]).max() < 40, colour
        if masks.shape[0] == 2:
            two += 1
            assert not (masks[0] & masks[1]).any()
            cells = explain.patch_masks(masks, 4)  # patch 8: never parts of both objects
            assert not (cells[0] & cells[1]).any()
    assert two >= 5


def test_pointing_game_scores_maps_made_to_order():
    trials = explain.two_object_trials(_shapes_config(), "test", 60)
    assert len(trials["name"]) % 2 == 0 and len(trials["name"]) >= 10
    assert trials["name"][0] != trials["name"][1] and trials["index"][0] == trials["index"][1]
    target = explain.patch_masks(trials["target"], 4).astype(float)
    other = explain.patch_masks(trials["other"], 4).astype(float)
    right = explain.pointing(target + 0.01 * np.random.default_rng(0).random(target.shape),
                             trials["target"], trials["other"])
    assert right["hit"].all() and not right["distractor"].any()
    wrong = explain.pointing(other, trials["target"], trials["other"])
    assert not wrong["hit"].any() and wrong["distractor"].all()
    np.testing.assert_array_equal(explain.peaks(np.arange(16.0).reshape(1, 4, 4)), [[3, 3]])


def _shapes_config(data_dir: str = ""):
    config = tiny.tiny_shapes_config(data_dir or "/nonexistent")
    config.data.name = "captioned_shapes/32px"
    return config


def test_evaluate_reports_each_method_and_draws_the_maps(setup, tmp_path):
    model, params, _, _ = setup
    config = _shapes_config()
    config.evaluation.explain.update(split="test", examples=30, pictures=3, batch_size=8)
    preprocess = image_files.Preprocessor(config.data).pixels
    calls = []

    def encode_texts(texts):
        calls.append(list(texts))
        return np.asarray(jax.random.normal(jax.random.key(2), (len(texts), 16)))
    metrics = explain.evaluate(config, model, params, preprocess, encode_texts,
                               str(tmp_path / "step1.png"))
    assert calls[0][0].startswith("a ") and calls[0][0].endswith(".")
    for method in explain.METHODS:
        assert 0 <= metrics[f"explain/test/{method}/pointing_acc"] <= 1
        assert (metrics[f"explain/test/{method}/pointing_acc"]
                + metrics[f"explain/test/{method}/distractor_rate"]) <= 1
    assert metrics["explain/test/pointing_acc"] == max(
        metrics[f"explain/test/{m}/pointing_acc"] for m in explain.METHODS)
    assert 0.1 < metrics["explain/test/chance"] < 0.5
    assert (tmp_path / "step1_explain_test.png").exists()


def test_config_errors_name_the_field(tmp_path):
    config = _shapes_config()
    config.evaluation.explain.update(split="test", methods=("occlusion", "saliency"))
    with pytest.raises(ValueError, match="explain.methods has \\['saliency'\\]"):
        explain.check_config(config)
    config.evaluation.explain.methods = explain.METHODS
    config.data.name = "coco_captions"
    with pytest.raises(ValueError, match="not the built-in captioned_shapes dataset"):
        explain.check_config(config)
    config = _shapes_config()
    config.evaluation.explain.split = "validation"
    with pytest.raises(config_checks.ConfigError, match="explain.split='validation'"):
        config_checks.validate(config, str(tmp_path), devices=8, shapes_only=True)
