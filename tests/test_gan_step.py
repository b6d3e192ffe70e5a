"""The adversarial step on 8 CPU devices: pmap gives the mesh driver's numbers; each update
is the average of the devices' gradients, each device drawing its own noise and augmentation
(recomputed shard by shard here); spectral-norm statistics and the EMA generator stay
identical on every device; R1 reads ``1 / r1_interval`` of the real images at every step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.tasks import adversarial
from multimodal_jax.tasks import adversarial_losses
from multimodal_jax.tasks import optim
from tests import tiny_gan

STEPS, BATCH, RNG = 2, 16, 1


def _run(setup, state, driver_name):
    """Every step's state (as the driver holds it) and metrics, on all 8 devices."""
    driver = drivers.make_driver(driver_name, adversarial.make_train_step(setup), donate=False)
    dstate, history = driver.put_state(state), []
    for step in range(STEPS):
        batch = driver.put_batch(tiny_gan.fake_batch(BATCH, seed=step))
        dstate, metrics = driver.step(dstate, batch, jax.random.key(RNG))
        history.append((jax.device_get(dstate), jax.device_get(metrics)))
    return driver, history


@pytest.fixture(scope="module")
def runs():
    config, setup, state = tiny_gan.setup_and_state("text")
    assert setup.align_weight and setup.matching_weight and setup.r1_gamma and setup.augment
    return setup, state, _run(setup, state, "mesh"), _run(setup, state, "pmap")


def _close(a, b, rtol=1e-4, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def test_pmap_equals_mesh(runs):
    _, state, (_, mesh), (_, pmap) = runs
    for (m_state, m_metrics), (p_state, p_metrics) in zip(mesh, pmap):
        _close(p_metrics, m_metrics)
        p_state = jax.tree.map(lambda x: x[0], p_state)  # pmap's copy on device 0
        _close(p_state.params, m_state.params)
        _close(p_state.batch_stats, m_state.batch_stats)
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), mesh[-1][0].params, state.params)
    assert min(max(jax.tree.leaves(moved[k])) for k in moved) > 1e-4  # G, D and EMA all train


@pytest.mark.parametrize("align_loss", ["contrastive", "cosine_to_real"])
def test_other_alignments_pmap_equals_mesh(align_loss):
    """The contrastive alignment compares each image with its own device's captions only, the
    capped one with its own device's real images, so both drivers compute the same step; both
    are > 0 here (a cross-entropy; G's untrained images are further from their captions than
    the real ones)."""
    _, setup, state = tiny_gan.setup_and_state("text", align_loss=align_loss)
    (_, mesh), (_, pmap) = _run(setup, state, "mesh"), _run(setup, state, "pmap")
    for (m_state, m_metrics), (p_state, p_metrics) in zip(mesh, pmap):
        _close(p_metrics, m_metrics)
        _close(jax.tree.map(lambda x: x[0], p_state).params, m_state.params)
    assert all(float(metrics["align"]) > 0 for _, metrics in mesh)


def test_alignment_weight_switches_for_the_last_steps():
    """``align_late_steps`` = 2 of 4: ``align_weight`` for the updates after steps 0 and 1,
    ``align_weight_late`` after steps 2 and 3 (and beyond, for a continued run); without a late
    phase the weight is the constant itself, a Python float."""
    _, setup, _ = tiny_gan.setup_and_state("text", align_weight=1.0, align_weight_late=5.0,
                                           align_late_steps=2)
    weights = [float(adversarial.alignment_weight(setup, jnp.asarray(s))) for s in (0, 1, 2, 3, 9)]
    assert weights == [1.0, 1.0, 5.0, 5.0, 5.0]
    _, constant, _ = tiny_gan.setup_and_state("text", align_weight=1.5, align_late_steps=0)
    assert adversarial.alignment_weight(constant, jnp.asarray(3)) == 1.5


def test_late_step_is_the_constant_step_at_its_weight():
    """At step 2 of 4 with the last 2 steps at weight 3, the step (G, D, EMA, metrics) equals
    that of a constant weight 3 under both drivers; at step 1 it equals the weight-1 step. D's
    update does not read the weight; G's does."""
    def one_step(setup, state, driver_name, step):
        driver = drivers.make_driver(driver_name, adversarial.make_train_step(setup), donate=False)
        batch = driver.put_batch(tiny_gan.fake_batch(BATCH, seed=0))
        state = state.replace(step=jnp.asarray(step, jnp.int32))
        new, metrics = driver.step(driver.put_state(state), batch, jax.random.key(RNG))
        new = jax.device_get(new)
        return (jax.tree.map(lambda x: x[0], new) if driver_name == "pmap" else new), metrics

    _, late, state = tiny_gan.setup_and_state("text", align_weight=1.0, align_weight_late=3.0,
                                              align_late_steps=2)
    _, three, _ = tiny_gan.setup_and_state("text", align_weight=3.0, align_late_steps=0)
    _, one, _ = tiny_gan.setup_and_state("text", align_weight=1.0, align_late_steps=0)
    switched, switched_metrics = one_step(late, state, "mesh", 2)
    assert float(switched_metrics["align_weight"]) == 3.0
    for driver_name in ("mesh", "pmap"):
        fixed, metrics = one_step(three, state, driver_name, 2)
        _close(switched.params, fixed.params)
        _close({k: switched_metrics[k] for k in metrics}, metrics)
    before, before_metrics = one_step(late, state, "mesh", 1)
    assert float(before_metrics["align_weight"]) == 1.0
    _close(before.params, one_step(one, state, "mesh", 1)[0].params)
    weight_one, _ = one_step(one, state, "mesh", 2)
    _close(switched.params["d"], weight_one.params["d"])
    assert float(np.abs(switched.params["g"]["to_rgb"]["kernel"]
                        - weight_one.params["g"]["to_rgb"]["kernel"]).max()) > 1e-6


def test_sn_statistics_and_ema_are_identical_on_every_device(runs):
    """pmap keeps one copy per device: every copy of every leaf is the same, bit for bit."""
    setup, state, _, (_, pmap) = runs
    previous_ema = state.params["g_ema"]
    for stacked, metrics in pmap:
        for part in (stacked.params, stacked.batch_stats, stacked.opt_g, stacked.opt_d):
            for leaf in jax.tree.leaves(part):
                assert leaf.shape[0] == 8
                np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))
        mine = jax.tree.map(lambda x: x[0], stacked.params)
        beta = float(metrics["ema_decay"])
        _close(mine["g_ema"], jax.tree.map(lambda e, g, beta=beta: beta * e + (1 - beta) * g,
                                           previous_ema, mine["g"]), rtol=1e-6, atol=1e-7)
        previous_ema = mine["g_ema"]
    assert 0 < float(pmap[0][1]["ema_decay"]) < float(pmap[-1][1]["ema_decay"]) < 1  # ramp-up
    sn = jax.tree.map(lambda new, old: float(np.abs(new[0] - old).max()),
                      pmap[0][0].batch_stats, state.batch_stats)
    assert max(jax.tree.leaves(sn)) > 0  # the power iteration did update them


def _shard(batch, index):
    per = BATCH // 8
    return {k: v[index * per:(index + 1) * per] for k, v in batch.items()}


def _grad_fns(setup):
    """Jitted D and G gradients of one device's slice, given its keys (no collectives)."""
    @jax.jit
    def d_grads(state, shard, keys):
        stats = adversarial.power_iteration(setup, state.params["d"], state.batch_stats)
        cond, fake, _ = adversarial.generate_for_step(setup, state.params["g"], state.frozen,
                                                      shard, keys)
        return jax.grad(adversarial.discriminator_loss, has_aux=True)(
            state.params["d"], setup, stats, state.frozen, shard, cond, fake, keys)[0]

    @jax.jit
    def g_grads(state, d_params, shard, keys):  # G's images drawn again: the same draw
        stats = adversarial.power_iteration(setup, state.params["d"], state.batch_stats)
        cond, fake, pullback = adversarial.generate_for_step(setup, state.params["g"],
                                                             state.frozen, shard, keys)
        return adversarial.generator_grads(fake, pullback, setup, d_params, stats, state.frozen,
                                           shard, cond, keys,
                                           adversarial.alignment_weight(setup, state.step))[0]
    return d_grads, g_grads


def _mean(trees):
    return jax.tree.map(lambda *xs: sum(xs) / len(xs), *trees)


def test_updates_average_the_devices_gradients_from_per_device_noise(runs):
    """Step 1's D and G updates equal Adam on the mean of 8 per-slice gradients, each slice
    with its device's keys; with device 0's keys on every slice the gradient differs."""
    setup, state, (_, mesh), _ = runs
    batch = tiny_gan.fake_batch(BATCH, seed=0)
    d_fn, g_fn = _grad_fns(setup)
    keys = [adversarial.device_keys(jax.random.key(RNG), 0, i) for i in range(8)]
    d_grads = _mean([d_fn(state, _shard(batch, i), keys[i]) for i in range(8)])
    d_expected = optax.apply_updates(state.params["d"],
                                     state.tx_d.update(d_grads, state.opt_d, state.params["d"])[0])
    _close(mesh[0][0].params["d"], d_expected)
    g_grads = _mean([g_fn(state, d_expected, _shard(batch, i), keys[i]) for i in range(8)])
    g_expected = optax.apply_updates(state.params["g"],
                                     state.tx_g.update(g_grads, state.opt_g, state.params["g"])[0])
    _close(mesh[0][0].params["g"], g_expected)
    shared = _mean([d_fn(state, _shard(batch, i), keys[0]) for i in range(8)])
    gap = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), shared, d_grads)
    assert max(jax.tree.leaves(gap)) > 1e-3


def test_device_keys_differ_per_device_and_repeat_per_step():
    mesh = mesh_lib.data_mesh()

    @jax.jit
    def noise(rng, step):
        def draw(rng):
            keys = adversarial.device_keys(rng, step, jax.lax.axis_index(mesh_lib.AXIS))
            return jax.random.normal(keys["z"], (1, 4))
        return jax.shard_map(draw, mesh=mesh, in_specs=P(), out_specs=P(mesh_lib.AXIS))(rng)

    z = np.asarray(noise(jax.random.key(0), 3))
    assert len({tuple(row) for row in z.round(6)}) == 8
    np.testing.assert_array_equal(z, noise(jax.random.key(0), 3))
    assert np.abs(z - np.asarray(noise(jax.random.key(0), 4))).min() > 0


def test_r1_reads_a_slice_of_the_real_images_at_every_step(runs):
    """R1 at every step on ``n // r1_interval`` (at least one) of a device's real images: the
    penalty D's loss reports is that of the slice, and changing an image outside it changes
    nothing of it."""
    setup, state, (_, mesh), _ = runs
    assert setup.r1_interval == 2
    assert all(float(metrics["r1"]) > 0 for _, metrics in mesh)  # steps 0 and 1
    assert [adversarial.r1_slice(n, 16) for n in (2, 16, 64, 100)] == [1, 1, 4, 6]
    batch = tiny_gan.fake_batch(4, seed=0)
    keys = adversarial.device_keys(jax.random.key(RNG), 0, 0)
    cond = adversarial.condition(setup, state.frozen, batch)
    fake = jnp.zeros_like(batch["image"])

    def r1(images):
        parts = adversarial.discriminator_loss(
            state.params["d"], setup, state.batch_stats, state.frozen, {**batch, "image": images},
            cond, fake, keys)[1]
        return float(parts["r1"])

    images = jnp.asarray(batch["image"])
    outside = images.at[3].set(0.0)  # r1_slice(4, 2) = 2: images 0 and 1
    inside = images.at[0].set(0.0)
    assert r1(outside) == r1(images) and r1(inside) != r1(images)


def test_config_errors_are_clear():
    config = tiny_gan.tiny_gan_config(kind="class")
    config.gan.align_weight = 1.0
    with pytest.raises(ValueError, match="needs text conditioning"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.data.image_size = 24
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.gan.align_late_steps = config.total_steps + 1
    with pytest.raises(ValueError, match="align_late_steps=5 in"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.gan.align_loss = "l2"
    with pytest.raises(ValueError, match="config.gan.align_loss='l2'; choose one of"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.evaluation.encoder = config.condition.encoder
    with pytest.raises(ValueError, match="also the GAN's conditioning model"):
        adversarial.AdversarialTask.check_config(config)
    config = tiny_gan.tiny_gan_config()
    config.optim.d.decay_from = 1.5
    with pytest.raises(ValueError, match="config.optim.d.decay_from must be in"):
        optim.check_config(config.optim)  # the optimiser blocks' check, as every task's
    from multimodal_jax.configs import gan_coco64  # noqa: PLC0415
    from multimodal_jax.configs import gan_shapes  # noqa: PLC0415
    from multimodal_jax.configs import gan_shapes_classcond  # noqa: PLC0415
    for module in (gan_shapes, gan_shapes_classcond, gan_coco64):  # the shipped configs pass
        adversarial.AdversarialTask.check_config(module.get_config())


def test_matching_term_counts_only_truly_mismatched_pairs():
    """A borrowed condition equal to the example's own (same class, or same caption) is not a
    mismatch: it gets no weight, and a batch of such pairs adds nothing to D's loss."""
    labels = {"label": jnp.array([3, 3, 5, 3])}  # each borrows its predecessor's (rolled by 1)
    np.testing.assert_array_equal(adversarial.truly_mismatched(labels), [0, 0, 1, 1])
    tokens = {"tokens": jnp.array([[1, 2, 0], [1, 2, 0], [1, 3, 0]])}
    np.testing.assert_array_equal(adversarial.truly_mismatched(tokens), [1, 0, 1])
    scores = jnp.array([0.5, -2.0, 3.0, 0.0])
    weights = adversarial.truly_mismatched(labels)
    expected = (4.0 + 1.0) / 2  # hinge relu(1 + s) on the two weighted rows
    assert float(adversarial_losses.d_fake(scores, "hinge", weights)) == pytest.approx(expected)
    assert float(adversarial_losses.d_fake(scores, "hinge", jnp.zeros(4))) == 0.0


def test_same_condition_compares_labels_where_the_batch_has_them():
    """Two paraphrases of one class ask for the same image (the contrastive alignment shares
    their probability, D's matching term skips them); without labels, equal tokens decide."""
    tokens = jnp.array([[1, 2, 0], [4, 2, 0], [1, 2, 0]])
    with_labels = adversarial.same_condition({"label": jnp.array([3, 3, 5]), "tokens": tokens})
    np.testing.assert_array_equal(with_labels, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(adversarial.same_condition({"tokens": tokens}),
                                  [[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def test_learning_rate_is_constant_then_linear_to_its_end_value():
    config = tiny_gan.tiny_gan_config().optim.g
    assert adversarial.learning_rate(config, 8) == config.lr  # a float: Adam keeps no count
    config.update(decay_from=0.75, end_lr_ratio=0.1)
    rate = adversarial.learning_rate(config, 8)
    np.testing.assert_allclose([rate(s) for s in (0, 5, 6, 7, 8, 9)],
                               config.lr * np.array([1, 1, 1, 0.55, 0.1, 0.1]), rtol=1e-6)


def test_the_decaying_rate_updates_as_the_constant_one_before_its_decay():
    """Before ``decay_from`` the scheduled Adam's updates equal the constant one's bitwise, so a
    run with the decay is the default run until then."""
    config = tiny_gan.tiny_gan_config().optim.g
    decaying = config.copy_and_resolve_references()
    decaying.decay_from = 0.5
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    constant, scheduled = (adversarial.make_optimizer(c, 8) for c in (config, decaying))
    states = [constant.init(params), scheduled.init(params)]
    for step in range(6):
        grads = {"w": jnp.sin(params["w"] * (step + 1))}
        u_c, states[0] = constant.update(grads, states[0], params)
        u_s, states[1] = scheduled.update(grads, states[1], params)
        if step <= 4:  # the rate at step 4 (= 0.5 * 8) is the decay's start, still lr
            np.testing.assert_array_equal(u_s["w"], u_c["w"])
        else:
            assert float(jnp.abs(u_s["w"]).max()) < float(jnp.abs(u_c["w"]).max())
