"""Helpers shared by the benchmark scripts: thread settings, interleaved timing with medians,
FLOP counts from XLA, the machine's description, and the output (a table, then one JSON line).

Timing rule: every side is warmed up first (compilation, allocator, caches), then the sides
run in alternating rounds (A B, B A, A B, ...) of a few steps each, so that a slow spell of a
shared machine hits both; a figure is the median over rounds, with the fastest and slowest
round beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from typing import Any
from typing import Callable
from typing import Sequence

THREADS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_threads(threads: int | None = None, cpu_only: bool = False) -> int:
    """Gives every framework the same number of threads: all the cores this process may use
    (or ``threads``). Call before importing torch. XLA's CPU client sizes its intra-op pool to
    the cores in the process's affinity mask, so JAX gets them all without a flag.
    ``cpu_only`` keeps JAX on the CPU too (the PyTorch side of a comparison runs there)."""
    if cpu_only:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    threads = threads or len(os.sched_getaffinity(0))
    for name in THREADS_ENV:
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return threads


def torch_threads(threads: int) -> None:
    """``torch.set_num_threads`` (intra-op); inter-op work does not occur in a train step.
    To use fewer cores for both sides, run the script under ``taskset -c 0``."""
    import torch  # noqa: PLC0415  (only the scripts that compare against torch need it)
    torch.set_num_threads(threads)


def base_parser(doc: str) -> argparse.ArgumentParser:
    """The flags every script shares: ``--quick``, ``--rounds``, ``--steps``, ``--warmup``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 rounds of 1 step after 1 warm-up step")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=5, help="steps per round and side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    return parser


def timing_args(args) -> tuple[int, int, int]:
    """(rounds, steps, warmup), shrunk by ``--quick``."""
    return (2, 1, 1) if args.quick else (args.rounds, args.steps, args.warmup)


# ----------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Side:
    """One contestant: ``step()`` runs one step and returns something ``sync`` can wait on."""

    name: str
    step: Callable[[], Any]
    sync: Callable[[Any], None] = lambda out: None


def run_steps(side: Side, steps: int) -> float:
    """Seconds for ``steps`` steps, dispatched back to back, until the last one has finished."""
    start = time.perf_counter()
    out = None
    for _ in range(steps):
        out = side.step()
    side.sync(out)
    return time.perf_counter() - start


def interleaved(sides: Sequence[Side], rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each side in each round, after ``warmup`` untimed steps each."""
    for side in sides:
        run_steps(side, warmup)
    times = {side.name: [] for side in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            times[side.name].append(run_steps(side, steps) / steps)
    return times


@dataclasses.dataclass
class Rate:
    """Items per second: median over rounds, and the slowest and fastest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, seconds_per_step: Sequence[float], items_per_step: float) -> "Rate":
        rates = [items_per_step / s for s in seconds_per_step]
        return cls(statistics.median(rates), min(rates), max(rates))

    def __str__(self) -> str:
        return f"{self.median:9.1f} [{self.low:.1f}, {self.high:.1f}]"


def jax_sync(out) -> None:
    """Waits for every array in ``out``."""
    import jax  # noqa: PLC0415
    jax.block_until_ready(out)


class TrainRunner:
    """A task's pure ``step(state, batch, rng)`` run as ``python -m train`` runs it: inside the
    non-finite guard, under the mesh driver (``jit(shard_map(...))`` over all devices, state
    donated); ``runner(device_batch)`` runs one step and returns its metrics."""

    def __init__(self, step, state, guard: bool = True):
        import jax  # noqa: PLC0415

        from multimodal_jax.parallel import drivers  # noqa: PLC0415
        from multimodal_jax.parallel import mesh as mesh_lib  # noqa: PLC0415
        from multimodal_jax.runtime import guards  # noqa: PLC0415
        self.step = guards.guarded(step) if guard else step
        self.driver = drivers.make_driver("mesh", self.step, mesh_lib.data_mesh())
        self.state = self.driver.put_state(guards.Carry(state, guards.init()) if guard else state)
        self.rng = jax.random.key(0)

    def put_batch(self, batch: dict):
        return self.driver.put_batch(batch)

    def __call__(self, device_batch):
        self.state, metrics = self.driver.step(self.state, device_batch, self.rng)
        return metrics

    def flops(self, device_batch) -> dict[str, float]:
        """``{"matmul": ..., "xla": ...}`` FLOPs of one step (see ``matmul_flops``, ``step_flops``)."""
        args = (self.step, self.driver.mesh, self.state, device_batch, self.rng)
        return {"matmul": matmul_flops(*args), "xla": step_flops(*args)}


def train_side(name: str, step, state, batch: dict, guard: bool = True):
    """(Side, first-step metrics, step FLOPs) of ``TrainRunner`` on one batch kept on device."""
    import jax  # noqa: PLC0415
    runner = TrainRunner(step, state, guard)
    device_batch = runner.put_batch(batch)
    flops = runner.flops(device_batch)
    first = {k: float(v) for k, v in jax.device_get(runner(device_batch)).items()}
    return Side(name, lambda: runner(device_batch), jax_sync), first, flops


def torch_side(model, loss_fn, lr: float, weight_decay: float, clip_norm: float):
    """(Side, first-step (loss, grad norm)) for a PyTorch step: ``loss_fn(model)``, backward,
    ``clip_grad_norm_`` and ``torch.optim.AdamW`` (its default implementation) with weight decay
    on matmul and convolution weights only, as ours (``optim.decay_mask``)."""
    import torch  # noqa: PLC0415
    model.train()
    named = list(model.named_parameters())
    decay = [p for n, p in named if n.endswith("weight") and p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in named if not any(p is d for d in decay)]
    params = [p for _, p in named]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98),
                            eps=1e-6)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        opt.step()
        return loss.detach(), norm

    loss, norm = step()
    return Side("torch", step), (float(loss), float(norm))


# ----------------------------------------------------------------------------- FLOPs


def xla_flops(jitted, *args, **kwargs) -> float:
    """FLOPs of one call of a ``jax.jit`` function on these arguments, from XLA's cost analysis
    of the optimised program (matmuls count 2 per multiply-add; elementwise ops count too)."""
    cost = jitted.lower(*args, **kwargs).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
        cost = cost[0]
    return float(cost["flops"])


def step_flops(step, mesh, state, batch, rng) -> float:
    """FLOPs of one train step ``step(state, batch, rng)`` run as the mesh driver runs it
    (``jit(shard_map(step))`` over ``mesh``, batch split on ``"data"``), from XLA."""
    import jax  # noqa: PLC0415
    from jax.sharding import PartitionSpec as P  # noqa: PLC0415
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data"), P()), out_specs=(P(), P()))
    return xla_flops(jax.jit(mapped), state, batch, rng)


def matmul_flops(step, mesh, state, batch, rng) -> float:
    """FLOPs of the matmuls and convolutions (2 per multiply-add) in one train step, per device:
    every ``dot_general`` and ``conv_general_dilated`` of its jaxpr, sub-jaxprs included. This is
    the count MFU uses; XLA's ``step_flops`` adds elementwise work on top."""
    import jax  # noqa: PLC0415
    from jax.sharding import PartitionSpec as P  # noqa: PLC0415
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data"), P()), out_specs=(P(), P()))
    return float(_jaxpr_matmul_flops(jax.make_jaxpr(mapped)(state, batch, rng).jaxpr))


def _jaxpr_matmul_flops(jaxpr) -> int:
    import math  # noqa: PLC0415
    total = 0
    for eqn in jaxpr.eqns:
        out = math.prod(eqn.outvars[0].aval.shape)
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * out * math.prod(lhs[d] for d in contract)
        elif eqn.primitive.name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            _, in_dim, *spatial = eqn.params["dimension_numbers"].rhs_spec
            total += 2 * out * rhs[in_dim] * math.prod(rhs[d] for d in spatial)
        for sub in _sub_jaxprs(eqn.params.values()):
            total += _jaxpr_matmul_flops(sub)
    return total


def _sub_jaxprs(values):
    """The jaxprs among an equation's parameters (pjit, shard_map, custom_jvp, remat, ...)."""
    for value in values:
        if hasattr(value, "eqns"):
            yield value
        elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
            yield value.jaxpr
        elif isinstance(value, (tuple, list)):
            yield from _sub_jaxprs(value)


def matmul_side(size: int, dtype: str = "float32") -> tuple[Side, float]:
    """(Side, FLOPs per call) for a square ``size`` JAX matmul at full precision on the default
    device: the machine's practical peak, timed like a train step."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype))
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.dtype(dtype))
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, precision="highest"))
    return Side(f"matmul{size}", lambda: matmul(a, b), jax_sync), 2.0 * size ** 3


def matmul_peak(size: int = 4096, rounds: int = 5, dtype: str = "float32") -> float:
    """FLOP/s of a square JAX matmul: the best of ``rounds`` pairs of calls."""
    side, flops = matmul_side(size, dtype)
    run_steps(side, 2)
    return flops / min(run_steps(side, 2) / 2 for _ in range(rounds))


def torch_matmul_peak(size: int = 4096, rounds: int = 5) -> float:
    """FLOP/s of a large square float32 PyTorch matmul: the best of ``rounds``."""
    import torch  # noqa: PLC0415
    a, b = torch.randn(size, size), torch.randn(size, size)
    side = Side("matmul", lambda: a @ b)
    run_steps(side, 2)
    best = min(run_steps(side, 2) / 2 for _ in range(rounds))
    return 2 * size ** 3 / best


# ----------------------------------------------------------------------------- reporting


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` prints it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, accelerator, versions, XLA flags, load, date."""
    import jax  # noqa: PLC0415
    info = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "device": str(jax.devices()[0].device_kind), "devices": jax.device_count(),
            "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "date": datetime.datetime.now().isoformat(timespec="minutes"),
            "load_1min": os.getloadavg()[0]}
    try:
        import torch  # noqa: PLC0415
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    except ImportError:
        pass
    return info


COMPARISON_HEADER = ("size", "batch", "ours img/s [min, max]", "torch img/s [min, max]",
                     "ours/torch", "first loss ours / torch")


def comparison_figures(name: str, r: dict) -> dict[str, float]:
    """JSON figures of one size of a side-by-side run (``r`` as the scripts' ``measure``)."""
    return {f"{name}/ours_img_s": r["ours"].median, f"{name}/torch_img_s": r["torch"].median,
            f"{name}/ratio": r["ours"].median / r["torch"].median,
            f"{name}/step_gflop": r["flops"]["analytic"] / 1e9,
            f"{name}/step_matmul_gflop": r["flops"]["matmul"] / 1e9,
            f"{name}/step_xla_gflop": r["flops"]["xla"] / 1e9,
            f"{name}/first_loss_diff": abs(r["first_loss"][0] - r["first_loss"][1]),
            f"{name}/first_grad_norm_rel_diff":
                abs(r["first_grad_norm"][0] / r["first_grad_norm"][1] - 1)}


def check_same_start(name: str, r: dict, loss_rtol: float = 1e-4, norm_rtol: float = 1e-3) -> None:
    """Stops the script when the two sides' first-step losses or gradient norms disagree: then
    they are not the same model on the same batch, and their speeds cannot be compared."""
    (ours, theirs), (g_ours, g_theirs) = r["first_loss"], r["first_grad_norm"]
    if abs(ours - theirs) > loss_rtol * abs(theirs) or abs(g_ours / g_theirs - 1) > norm_rtol:
        raise SystemExit(f"{name}: the first steps disagree (loss {ours:.6g} vs {theirs:.6g}, "
                         f"grad norm {g_ours:.6g} vs {g_theirs:.6g}): the two sides are not the "
                         "same computation, so their speeds are not comparable.")


def time_pair(name: str, ours: tuple, theirs: tuple, flops: dict, batch: int, rounds: int,
              steps: int, warmup: int) -> dict:
    """Checks that both sides start alike (``ours = (Side, first metrics)``, ``theirs = (Side,
    (loss, grad norm))``), then times them interleaved: ``{"ours", "torch"}`` rates and the
    figures ``comparison_figures`` reads."""
    (our_side, our_first), (their_side, their_first) = ours, theirs
    r = {"flops": flops, "first_loss": (our_first["loss"], their_first[0]),
         "first_grad_norm": (our_first["grad_norm"], their_first[1])}
    check_same_start(name, r)
    times = interleaved([our_side, their_side], rounds, steps, warmup)
    return {**r, **{k: Rate.of(v, batch) for k, v in times.items()}}


LR, WEIGHT_DECAY, CLIP_NORM = 1e-4, 0.1, 1.0  # both sides' AdamW step


@dataclasses.dataclass(frozen=True)
class HfComparison:
    """One of our train steps against the Hugging Face PyTorch model of the same config: ours
    is imported from the PyTorch model's ``save_pretrained`` folder, so both start from the
    same weights. Per size (a dict of the script's ``SIZES``):

    ``hf_model(size)``            the PyTorch model (after ``torch.manual_seed(0)``)
    ``make_batch(size)``          the numpy batch both sides take
    ``torch_loss(model, batch)``  its loss, as the PyTorch side computes it
    ``load_ours(path, **kw)``     ``(model, variables)`` from the folder (``kw``: ``dtype``)
    ``state_class`` / ``step(size)``  our train state class and pure step
    ``analytic(model, batch)``    our analytic training FLOPs of one example
    """

    hf_model: Callable
    make_batch: Callable
    torch_loss: Callable
    load_ours: Callable
    state_class: type
    step: Callable
    analytic: Callable

    def build(self, size: dict):
        """(PyTorch model, its ``save_pretrained`` folder (a TemporaryDirectory), batch)."""
        import tempfile  # noqa: PLC0415

        import torch  # noqa: PLC0415
        torch.manual_seed(0)
        model = self.hf_model(size)
        folder = tempfile.TemporaryDirectory()
        model.save_pretrained(folder.name)
        return model, folder, self.make_batch(size)

    def ours_side(self, path: str, batch: dict, size: dict, model_dtype=None):
        """(Side, first-step metrics, step FLOPs) for our step as ``python -m train`` runs it;
        ``model_dtype`` (e.g. ``jnp.bfloat16``) sets the compute dtype, params stay float32."""
        from multimodal_jax.tasks import optim  # noqa: PLC0415
        model, variables = self.load_ours(path, **({"dtype": model_dtype} if model_dtype else {}))
        config = optim.default_config()
        config.update(lr=LR, warmup_steps=0, weight_decay=WEIGHT_DECAY, grad_clip_norm=CLIP_NORM)
        state = self.state_class.create(apply_fn=model.apply, params=variables["params"],
                                        tx=optim.make_optimizer(config, 10_000))
        side, first, flops = train_side("ours", self.step(size), state, batch)
        flops["analytic"] = len(batch["image"]) * self.analytic(model, batch)
        return side, first, flops

    def measure(self, name: str, size: dict, rounds: int, steps: int, warmup: int) -> dict:
        """Builds both sides of one size, checks their first steps agree, times them
        interleaved."""
        model, folder, batch = self.build(size)
        with folder:
            ours, ours_first, flops = self.ours_side(folder.name, batch, size)
        theirs = torch_side(model, lambda m: self.torch_loss(m, batch), LR, WEIGHT_DECAY, CLIP_NORM)
        return time_pair(name, (ours, ours_first), theirs, flops, size["batch"], rounds, steps,
                         warmup)


def comparison_main(doc: str, threads: int, sizes: dict, measure: Callable) -> None:
    """A side-by-side script's command line: ``--sizes`` of ``sizes``, each run by
    ``measure(name, size, rounds, steps, warmup)``; prints the table and the JSON line."""
    parser = base_parser(doc)
    parser.add_argument("--sizes", default=",".join(sizes), help=f"comma list of {list(sizes)}")
    args = parser.parse_args()
    torch_threads(threads)
    rounds, steps, warmup = timing_args(args)
    figures, rows = {"threads": threads, "rounds": rounds, "steps_per_round": steps}, []
    for name in args.sizes.split(","):
        r = measure(name, sizes[name], rounds, steps, warmup)
        figures.update(comparison_figures(name, r))
        rows.append(comparison_row(name, sizes[name]["batch"], r))
    print_table(COMPARISON_HEADER, rows)
    emit(figures)


def comparison_row(name: str, batch: int, r: dict) -> tuple:
    """Table row of one size of a side-by-side run."""
    return (name, batch, str(r["ours"]), str(r["torch"]),
            f"{r['ours'].median / r['torch'].median:.2f}x",
            f"{r['first_loss'][0]:.5f} / {r['first_loss'][1]:.5f}")


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def emit(figures: dict[str, Any]) -> None:
    """The last line of every script: one JSON object with its figures (5 significant digits,
    so small differences stay visible) and the machine."""
    out = {k: (float(f"{v:.5g}") if isinstance(v, float) else v) for k, v in figures.items()}
    out.update({f"machine/{k}": v for k, v in machine().items()})
    print(json.dumps(out), flush=True)
