"""R1 in the GAN step: lazy R1 under ``lax.cond`` against R1 on a slice of the batch every step.

Run (figures in README.md, GAN section):
  python -m benchmarks.gan_r1            # 7 rounds x 5 steps per side
  python -m benchmarks.gan_r1 --quick    # smoke test

The D of ``configs/gan_shapes.py`` (32 px, spectral norm, DiffAugment translation), class
conditioned so that no trained CLIP is needed, at batch 64 on this CPU. Each side is D's
gradient of ``gamma / 2 * R1`` alone, jitted: ``cond_full``, the whole batch inside
``lax.cond`` on a step that runs it (as the step did until 2026-12-06: it runs once every
``r1_interval`` steps); ``full``, the same without the cond; ``slice``, the first
``batch // r1_interval`` images, as ``tasks/adversarial.discriminator_loss`` does at every step.
Per step of training, lazy R1 costs ``cond_full / r1_interval``, the slice costs ``slice``.
"""

from benchmarks import common

THREADS = common.set_threads(cpu_only=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from multimodal_jax.configs import gan_shapes  # noqa: E402
from multimodal_jax.tasks import adversarial  # noqa: E402

BATCH, CLASSES = 64, 24


def r1_grad_fns(setup, stats):
    """``{side: jitted d_params -> grad}`` for the three ways of taking R1."""
    rng = np.random.default_rng(0)
    real = jnp.asarray(rng.uniform(-1, 1, (BATCH, 32, 32, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, CLASSES, BATCH), jnp.int32)
    key = jax.random.key(0)

    def r1(d, k):
        return setup.r1_gamma / 2 * adversarial.r1_at(setup, d, stats, {}, real[:k], labels[:k], key)

    def cond_full(d, step):
        return jax.lax.cond(step % setup.r1_interval == 0, lambda: r1(d, BATCH), lambda: 0.0)

    slice_k = adversarial.r1_slice(BATCH, setup.r1_interval)
    return {"cond_full": jax.jit(jax.grad(lambda d: cond_full(d, jnp.int32(0)))),
            "full": jax.jit(jax.grad(lambda d: r1(d, BATCH))),
            "slice": jax.jit(jax.grad(lambda d: r1(d, slice_k)))}


def main(argv=None) -> None:
    args = common.base_parser(__doc__).parse_args(argv)
    rounds, steps, warmup = common.timing_args(args)
    config = gan_shapes.get_config()
    config.condition.update(kind="class", num_classes=CLASSES)
    config.gan.align_weight = 0.0
    setup = adversarial.make_setup(config, None)
    state = adversarial.create_state(setup, jax.random.key(0),
                                     adversarial.make_optimizer(config.optim.g),
                                     adversarial.make_optimizer(config.optim.d))
    stats = adversarial.power_iteration(setup, state.params["d"], state.batch_stats)
    fns, params = r1_grad_fns(setup, stats), state.params["d"]
    sides = [common.Side(name, lambda f=f: f(params), common.jax_sync) for name, f in fns.items()]
    times = common.interleaved(sides, rounds, steps, warmup)
    ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    per_step = {"lazy_cond": ms["cond_full"] / setup.r1_interval, "slice": ms["slice"]}
    common.print_table(["side", "ms per call (median)", "ms per training step"],
                       [["cond_full", f"{ms['cond_full']:.1f}", f"{per_step['lazy_cond']:.1f}"],
                        ["full", f"{ms['full']:.1f}", ""],
                        ["slice", f"{ms['slice']:.1f}", f"{per_step['slice']:.1f}"]])
    common.emit({"batch": BATCH, "r1_interval": setup.r1_interval, "threads": THREADS,
                 **{f"ms/{k}": v for k, v in ms.items()},
                 **{f"ms_per_step/{k}": v for k, v in per_step.items()}})


if __name__ == "__main__":
    main()
