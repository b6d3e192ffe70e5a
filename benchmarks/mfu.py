"""Model FLOP utilisation of our train steps: achieved matmul FLOP/s against the machine's peak.

Run (figures in README.md, "Performance"):
  python -m benchmarks.mfu                       # contrastive and classification, both sizes
  python -m benchmarks.mfu --quick               # smoke test
  python -m benchmarks.mfu --which clip:b16_112 --rounds 9

The steps are those of ``clip_step.py`` and ``vit_step.py`` (same sizes and models, ours only,
as ``python -m train`` runs them). A step's FLOPs are ``multimodal_jax.flops``'s analytic
count (the one the training loop's MFU meter uses: every matmul and convolution, 2 per
multiply-add, 3x the forward pass), printed beside two checks: the matmuls and convolutions
counted in the step's jaxpr, and XLA's ``cost_analysis`` (which adds elementwise work).

On CPU the peak is measured in the same run: a large square float32 JAX matmul (the fastest of
a few sizes, picked first) timed in rounds interleaved with the step's rounds, and PyTorch's
matmul of that size; the peak is the best rate any of them reached (a single round's, so it is
the machine's practical best, not its average), and MFU is the step's median FLOP/s against it.
(Against each round's own matmul the ratio can pass 100%: XLA's lone 1024-4096 matmul is not
always faster than the step's own, better-blocked ones.) On a GPU or TPU the step computes in
bfloat16 (params float32) and MFU is against the device's nominal dense bfloat16 peak
(``NOMINAL_BF16_PEAK``, or ``--peak-tflops``), with the measured bfloat16 matmul beside it.
"""

from benchmarks import common

THREADS = common.set_threads()  # before torch / jax start their thread pools

import statistics  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import clip_step  # noqa: E402
from benchmarks import vit_step  # noqa: E402

# Dense bfloat16 peak FLOP/s per JAX device, by a substring of ``device_kind`` (first match).
NOMINAL_BF16_PEAK = (
    ("GB200", 2.5e15), ("B200", 2.25e15), ("H200", 989e12), ("H100 PCIe", 756e12),
    ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12), ("A100", 312e12), ("A800", 312e12),
    ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
    ("TPU v6 lite", 918e12), ("TPU v5 lite", 197e12), ("TPU v5", 459e12), ("TPU v4", 275e12),
    ("TPU v3", 61.5e12), ("TPU v2", 22.5e12),  # v2 / v3: one device is one core (half a chip)
)
STEPS = ("clip:tiny", "clip:b16_112", "vit:tiny", "vit:b16_112")
MATMUL_SIZES = (1024, 2048, 4096)


def nominal_peak(kind: str):
    """The table's peak for a device kind, or None."""
    return next((peak for name, peak in NOMINAL_BF16_PEAK if name in kind), None)


def build_step(task: str, size_name: str, model_dtype):
    """(Side, FLOPs dict, batch size) of our step for ``clip``/``vit`` at one size."""
    module = clip_step if task == "clip" else vit_step
    size = module.SIZES[size_name]
    _, folder, batch = module.COMPARISON.build(size)
    with folder:
        side, _, flops = module.COMPARISON.ours_side(folder.name, batch, size, model_dtype)
    return side, flops, size["batch"]


def fastest_matmul(dtype: str):
    """(Side, FLOPs) of the square matmul size that runs fastest here (best of 3 each)."""
    best = max(MATMUL_SIZES, key=lambda n: common.matmul_peak(n, rounds=3, dtype=dtype))
    return common.matmul_side(best, dtype)


def main():
    parser = common.base_parser(__doc__)
    parser.add_argument("--which", default=",".join(STEPS), help=f"comma list of {STEPS}")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="accelerator peak to use instead of the nominal table")
    args = parser.parse_args()
    common.torch_threads(THREADS)
    rounds, steps, warmup = common.timing_args(args)
    device = jax.devices()[0]
    on_cpu = device.platform == "cpu"
    dtype = "float32" if on_cpu else "bfloat16"
    matmul, matmul_flop = fastest_matmul(dtype)
    nominal = None if on_cpu else (args.peak_tflops * 1e12 if args.peak_tflops
                                   else nominal_peak(device.device_kind))
    figures = {"dtype": dtype, "rounds": rounds, "steps_per_round": steps,
               "matmul_size": int(round((matmul_flop / 2) ** (1 / 3)))}
    if on_cpu:
        figures["torch_matmul_gflop_s"] = common.torch_matmul_peak(figures["matmul_size"], 3) / 1e9
    if nominal:
        figures["nominal_peak_tflop_s"] = nominal / 1e12
    rows = []
    for spec in args.which.split(","):
        task, size_name = spec.split(":")
        side, flops, batch = build_step(task, size_name, None if on_cpu else jnp.bfloat16)
        times = common.interleaved([side, matmul], rounds, steps, warmup)
        # Per device: the step runs over every device, the matmul peak is one device's.
        achieved = [flops["analytic"] / t / jax.device_count() for t in times[side.name]]
        peaks = [matmul_flop / t for t in times[matmul.name]]
        best = max(peaks + [figures.get("torch_matmul_gflop_s", 0.0) * 1e9])
        mfus = [a / (nominal or best) for a in achieved]
        name = f"{task}_{size_name}"
        figures.update({
            f"{name}/img_s": statistics.median(batch / t for t in times[side.name]),
            f"{name}/gflop": flops["analytic"] / 1e9,
            f"{name}/jaxpr_matmul_gflop": flops["matmul"] / 1e9,
            f"{name}/xla_gflop": flops["xla"] / 1e9,
            f"{name}/achieved_gflop_s": statistics.median(achieved) / 1e9,
            f"{name}/matmul_peak_gflop_s": best / 1e9,
            f"{name}/matmul_median_gflop_s": statistics.median(peaks) / 1e9,
            f"{name}/mfu": statistics.median(mfus)})
        rows.append((name, batch, f"{figures[f'{name}/img_s']:.1f}",
                     f"{flops['analytic'] / 1e9:.1f} ({flops['matmul'] / 1e9:.1f}, "
                     f"{flops['xla'] / 1e9:.1f})",
                     f"{figures[f'{name}/achieved_gflop_s']:.1f}",
                     f"{figures[f'{name}/matmul_peak_gflop_s']:.1f}",
                     f"{100 * statistics.median(mfus):.1f}% [{100 * min(mfus):.1f}, "
                     f"{100 * max(mfus):.1f}]"))
    peak_name = "nominal" if nominal else f"best {dtype} matmul {figures['matmul_size']}"
    common.print_table(("step", "batch", "img/s", "GFLOP/step (jaxpr, XLA)", "GFLOP/s",
                        "matmul GFLOP/s", f"MFU vs {peak_name} [min, max]"), rows)
    common.emit(figures)


if __name__ == "__main__":
    main()
