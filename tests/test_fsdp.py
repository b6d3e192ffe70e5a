"""FSDP on the mesh driver: the state split over 8 CPU devices by rules gives the step results
of the replicated state, and each device holds about 1/8 of it; rules map to the right specs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.parallel import sharding
from multimodal_jax.tasks import contrastive
from tests import tiny

FSDP_RULES = ((".*", "fsdp"),)
LOGICAL = sharding.LOGICAL_RULES
LOGICAL_AXES = sharding.FSDP_LOGICAL_AXES


def _run(config, mesh, rules=(), logical_axes=None, steps=2):
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    driver = drivers.make_driver("mesh", contrastive.make_train_step(config), mesh,
                                  rules=rules, logical_axes=logical_axes)
    create = lambda rng: contrastive.create_state(config, model, rng)  # noqa: E731
    state = driver.put_state(mesh_lib.init_state(create, jax.random.key(0), mesh, rules, logical_axes))
    placed = sharding.bytes_per_device(state.params)
    for step in range(steps):
        batch = tiny.fake_batch(config.batch_size, config.data.image_size,
                                config.tokenizer.max_len, seed=step)
        state, metrics = driver.step(state, driver.put_batch(batch), jax.random.key(1))
    return state, jax.device_get(metrics), placed


def test_fsdp_step_equals_replicated_and_splits_the_state():
    config = tiny.tiny_contrastive_config("softmax")
    replicated, m_rep, _ = _run(config, mesh_lib.make_mesh(1))
    fsdp, m_fsdp, placed = _run(config, mesh_lib.make_mesh(8), FSDP_RULES)
    mixed, m_mixed, _ = _run(config, mesh_lib.make_mesh(4), LOGICAL, LOGICAL_AXES)
    for m in (m_fsdp, m_mixed):
        np.testing.assert_allclose(m["loss"], m_rep["loss"], rtol=1e-5)
    expected = jax.device_get(replicated.params)
    for other in (fsdp, mixed):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                     jax.device_get(other.params), expected)

    # The state stays split after the steps, and each device held ~1/8 of the parameters.
    kernel = fsdp.params["image_tower"]["encoder"]["block_0"]["mlp"]["fc1"]["kernel"]
    assert kernel.sharding.spec == P(None, "fsdp")
    mu = jax.tree.leaves(fsdp.opt_state)[1:]
    assert any(getattr(x, "sharding", None) is not None and x.sharding.spec != P() for x in mu)
    total = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(expected))
    assert len(placed) == 8
    for nbytes in placed.values():
        assert abs(nbytes / total - 1 / 8) < 0.01, (nbytes, total)


def test_rules_give_the_expected_specs():
    mesh = mesh_lib.make_mesh(4)
    spec = lambda path, shape, rules, axes=None: sharding.spec_for(path, shape, rules, mesh, axes)  # noqa: E731
    assert spec("params/a/kernel", (6, 8), FSDP_RULES) == P(None, "fsdp")
    assert spec("params/a/bias", (6,), FSDP_RULES) == P()  # 6 does not divide over 4
    assert spec("params/a/scale", (), FSDP_RULES) == P()
    assert spec("params/x/kernel", (8, 8), [("kernel$", "replicate"), (".*", "fsdp")]) == P()
    assert spec("opt_state/0/mu/enc/mlp/fc2/kernel", (16, 8), LOGICAL, LOGICAL_AXES) == P(None, "fsdp")
    assert spec("params/enc/attn/query/kernel", (8, 2, 4), LOGICAL, LOGICAL_AXES) == P("fsdp", None, None)
    with pytest.raises(ValueError, match="one entry"):
        spec("params/a/kernel", (8, 8), [("kernel", ("fsdp",))])
    with pytest.raises(ValueError, match="neither a mesh axis"):
        spec("params/a/kernel", (8, 8), [("kernel", ("embed", None))])
    with pytest.raises(ValueError, match="only"):
        spec("params/a/kernel", (8, 8), [("kernel", ("data", None))])
    with pytest.raises(ValueError, match="twice"):
        spec("params/mlp/fc1/kernel", (8, 16), LOGICAL, {**LOGICAL_AXES, "mlp": "fsdp"})
    with pytest.raises(ValueError, match="does not divide"):
        spec("params/a/kernel", (6, 8), [("kernel", ("fsdp", None))])


def test_pmap_driver_refuses_an_fsdp_mesh():
    with pytest.raises(ValueError, match="driver='mesh'"):
        drivers.make_driver("pmap", lambda s, b, r: (s, {}), mesh_lib.make_mesh(2))


def test_bfloat16_compute_keeps_float32_params_and_bfloat16_first_moment():
    config = tiny.tiny_contrastive_config("sigmoid")
    config.model.dtype, config.optim.mu_dtype = "bfloat16", "bfloat16"
    state, metrics, _ = _run(config, mesh_lib.make_mesh(8), FSDP_RULES, steps=1)
    assert np.isfinite(metrics["loss"])
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {np.dtype("float32")}
    moments = [x for path, x in jax.tree_util.tree_leaves_with_path(state.opt_state)
               if "mu" in sharding.path_str(path).split("/")]
    assert moments and {x.dtype for x in moments} == {jnp.dtype("bfloat16")}


def test_parallel_config_errors_name_the_field():
    import ml_collections  # noqa: PLC0415
    good = dict(driver="mesh", fsdp=4, rules=FSDP_RULES, logical_axes={}, peak_tflops=0.0)
    drivers.check_config(ml_collections.ConfigDict(good), 8)
    for bad, match in [(dict(fsdp=3), "fsdp=3"), (dict(driver="pmap"), "driver='mesh'"),
                       (dict(rules=(("x",),)), "regex, spec"),
                       (dict(logical_axes={"embed": "model"}), "logical_axes"),
                       (dict(peak_tflops=-1.0), "peak_tflops")]:
        with pytest.raises(ValueError, match=match):
            drivers.check_config(ml_collections.ConfigDict({**good, **bad}), 8)


def test_fsdp_with_rules_that_split_nothing_is_an_error():
    import ml_collections  # noqa: PLC0415
    base = dict(driver="mesh", fsdp=2, logical_axes={}, peak_tflops=0.0)
    nothing = [(), (("kernel", "replicate"),), (("kernel", (None, "mlp")),)]
    for rules in nothing:  # no rule names "fsdp", directly or through a logical axis
        with pytest.raises(ValueError, match=r"config.parallel.fsdp=2 with config.parallel.rules=.* "
                           r"shards nothing.*--config.parallel.rules="):
            drivers.check_config(ml_collections.ConfigDict({**base, "rules": rules}), 8)
    drivers.check_config(ml_collections.ConfigDict(
        {**base, "rules": (("kernel", (None, "mlp")),), "logical_axes": {"mlp": "fsdp"}}), 8)
    drivers.check_config(ml_collections.ConfigDict({**base, "fsdp": 1, "rules": ()}), 8)
    # Rules that could split but match no path of the state: found with the state's shapes.
    config = tiny.tiny_contrastive_config()
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    create = lambda rng: contrastive.create_state(config, model, rng)  # noqa: E731
    with pytest.raises(sharding.RulesError, match="split none of the state's .* arrays over the 2 devices"):
        mesh_lib.init_state(create, jax.random.key(0), mesh_lib.make_mesh(2), (("no/such/path", "fsdp"),))
