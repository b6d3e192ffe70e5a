"""G's upsampling convolution: ``nn.Conv`` after nearest upsampling against ``UpsampleConv``.

Run (figures in README.md, GAN section):
  python -m benchmarks.gan_upsample_conv            # 7 rounds x 5 steps per side
  python -m benchmarks.gan_upsample_conv --quick    # smoke test

For each up-block of ``configs/gan_shapes.py``'s G (widths 256 -> 128 at 4 -> 8 px, 128 -> 64,
64 -> 32), at batch 64 on this CPU: the jitted forward and backward (gradients of the input and
the parameters) of its first convolution, computed as the model did until 2026-12-07
(``plain``: a 3x3 ``nn.Conv`` over the upsampled map) and as it does now (``phases``:
``models/gan.UpsampleConv``, four 2x2 convolutions over the map itself; 16 taps per input
pixel against 36). Same parameters, same outputs (tests/test_gan_models.py).
"""

from benchmarks import common

THREADS = common.set_threads(cpu_only=True)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from multimodal_jax.configs import gan_shapes  # noqa: E402
from multimodal_jax.models import gan  # noqa: E402

BATCH = 64


def grad_fn(module, upsampled: bool):
    """Jitted ``(params, x) -> grads`` of a scalar of the conv's output (``upsampled``: the
    module reads ``upsample(x)``)."""
    def loss(params, x):
        return jnp.sum(jnp.tanh(module.apply(params, gan.upsample(x) if upsampled else x)))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def block_sides(side: int, width_in: int, width_out: int):
    """The ``plain`` and ``phases`` sides of one block's first convolution."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, side, side, width_in)),
                    jnp.float32)
    fast = gan.UpsampleConv(width_out)
    params = fast.init(jax.random.key(0), x)
    plain, phases = grad_fn(nn.Conv(width_out, (3, 3)), True), grad_fn(fast, False)
    return [common.Side(f"{side}px/plain", lambda: plain(params, x), common.jax_sync),
            common.Side(f"{side}px/phases", lambda: phases(params, x), common.jax_sync)]


def main(argv=None) -> None:
    args = common.base_parser(__doc__).parse_args(argv)
    rounds, steps, warmup = common.timing_args(args)
    widths = gan_shapes.get_config().model.generator.widths
    sizes = [4 * 2 ** i for i in range(len(widths) - 1)]
    sides = [s for i, size in enumerate(sizes) for s in block_sides(size, widths[i], widths[i + 1])]
    times = common.interleaved(sides, rounds, steps, warmup)
    ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    rows = []
    for block in (f"{size}px" for size in sizes):
        plain, phases = ms[f"{block}/plain"], ms[f"{block}/phases"]
        rows.append([block, f"{plain:.1f}", f"{phases:.1f}", f"{plain / phases:.2f}x"])
    total = {k: sum(v for n, v in ms.items() if n.endswith(k)) for k in ("plain", "phases")}
    rows.append(["all", f"{total['plain']:.1f}", f"{total['phases']:.1f}",
                 f"{total['plain'] / total['phases']:.2f}x"])
    common.print_table(["block input", "plain ms", "phases ms", "speed-up"], rows)
    common.emit({"batch": BATCH, "threads": THREADS, **{f"ms/{k}": v for k, v in ms.items()},
                 **{f"ms/all/{k}": v for k, v in total.items()}})


if __name__ == "__main__":
    main()
