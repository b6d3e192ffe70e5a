"""Compiles the exact train step ``python -m train`` would run, for a TPU topology this machine
does not have, and reports what the chips would see: memory per chip against its HBM, the
compiler's FLOPs and bytes, the collectives, a roofline step time and the MFU it bounds.

The step is the task's, inside the non-finite guard, under the configured driver's jit with the
state donated and laid out by the FSDP rules, with accumulation, remat and dtypes as the
config says; the evaluation functions are compiled too. Nothing is read: no dataset, tokenizer
file or weights (the task is built with ``shapes_only``).

    report = compile_config(config, "v5e:4x4")        # raises DoesNotFitError if it does not fit
    table = fit(config, "v5e:4x4")                    # largest batch per chip, per remat policy
"""

import copy
import dataclasses
import functools
import logging
import time
from typing import Callable

import jax
import ml_collections
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from multimodal_jax import tasks
from multimodal_jax.data import pipeline
from multimodal_jax.parallel import aot
from multimodal_jax.parallel import chips
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import guards

log = logging.getLogger(__name__)

REMAT_POLICIES = ("none", "dots_saveable", "nothing_saveable")
LEVERS = ("a remat policy (--config.model.image.remat_policy=nothing_saveable, likewise "
          "model.text), FSDP (--config.parallel.fsdp=N with rules that split the parameters), a "
          "smaller batch per chip (--config.batch_size), micro-batches (--config.accum_steps=K) "
          "or bfloat16 moments (--config.optim.mu_dtype=bfloat16)")


class DoesNotFitError(config_checks.ConfigError):
    """The config's step needs more memory per chip than the chip has: ``needed_gib`` of
    ``capacity_gib`` per chip."""

    def __init__(self, report: dict, capacity_gib: float):
        self.needed_gib, self.capacity_gib = report["memory_gib"]["total"], capacity_gib
        super().__init__(_no_fit_message(report, capacity_gib))


@dataclasses.dataclass
class Target:
    """The devices compiled for: a TPU topology, ``num_slices`` of it."""

    topology: str
    num_slices: int
    devices: list
    chip: chips.Chip

    @property
    def per_chip(self) -> int:
        return aot.devices_per_chip(self.devices)

    @property
    def chips(self) -> int:
        return len(self.devices) // self.per_chip


def target(topology: str, num_slices: int = 1) -> Target:
    """The compile-only devices of ``topology`` and their chip's published figures."""
    try:
        devices = aot.topology_devices(topology, num_slices)
    except ValueError as error:
        raise config_checks.ConfigError(str(error)) from None
    chip = chips.chip_of(devices[0].device_kind)
    if chip is None:
        raise config_checks.ConfigError(f"No published figures for {devices[0].device_kind!r} "
                         "(multimodal_jax/parallel/chips.py): add its HBM, peak and bandwidth.")
    where = Target(topology, num_slices, devices, chip)
    if where.per_chip > 1:
        log.warning("%s: libtpu's compile-only devices are the %d TensorCores of each chip, while "
                    "JAX on such a VM drives each chip as one device (megacore): this compile "
                    "splits the batch per core and holds replicated state once per core, so its "
                    "memory per chip overstates a megacore run's.", topology, where.per_chip)
    return where


def _max_len(task):
    """The token length of the task's batches (None: it reads no text)."""
    return getattr(task.tokenizer, "max_len", None)


def _abstract_carry(task, driver, rng):
    """The guarded carry's shapes, laid out as the driver lays out the real one."""
    state = jax.eval_shape(task.create_state, rng)
    carry = guards.Carry(state, jax.eval_shape(guards.init))
    return aot.abstract(carry, driver.state_shardings(carry))


def compile_step(config, task, mesh):
    """The compiled guarded train step and its abstract carry."""
    layout = mesh_lib.layout(config.parallel)
    mode = config.get("on_nonfinite", "skip")
    driver = drivers.make_driver(config.parallel.driver, guards.guarded(task.train_step(), mode),
                                 mesh, **layout)
    if not hasattr(driver, "lower"):
        raise ValueError("Ahead-of-time compiles use the mesh driver: set "
                         "--config.parallel.driver=mesh (pmap runs the same program per device).")
    key = jax.eval_shape(jax.random.key, 0)
    rng = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=mesh_lib.replicated(mesh))
    carry = _abstract_carry(task, driver, jax.random.key(config.seed))
    spec = pipeline.batch_spec(config.data, _max_len(task), config.batch_size)
    batch = aot.abstract_batch(spec, NamedSharding(mesh, P(mesh_lib.batch_axes(mesh))))
    return driver.lower(carry, batch, rng).compile(aot.compiler_options(mesh)), carry


def _compile_eval(config, task, mesh, params) -> dict[str, dict]:
    """Memory of each evaluation function compiled on the evaluation batch."""
    size = config.get("evaluation", {}).get("batch_size", config.batch_size)
    if not task.eval_functions() or size % mesh.shape[mesh_lib.AXIS]:
        return {}
    batch = aot.abstract_batch(pipeline.batch_spec(config.data, _max_len(task), size),
                               NamedSharding(mesh, P(mesh_lib.AXIS)))
    out = {}
    for name, (fn, keys) in task.eval_functions().items():
        jitted = fn if hasattr(fn, "lower") else jax.jit(fn)  # a partial of a jitted function
        compiled = jitted.lower(params, *[batch[k] for k in keys]).compile(aot.compiler_options(mesh))
        out[name] = {"memory_gib": aot.memory_gib(compiled)["total"],
                     "flops_per_chip": aot.cost(compiled)[0]}
    return out


def build(config: ml_collections.ConfigDict, where: Target):
    """The checked config's task (shapes only) and its mesh on ``where``'s devices."""
    config_checks.validate(config, "", devices=len(where.devices), shapes_only=True)
    task = tasks.get_task(config.task)(config, "", shapes_only=True)
    return task, mesh_lib.make_mesh(int(config.parallel.get("fsdp", 1)), where.devices)


def compile_config(config: ml_collections.ConfigDict, topology: str, num_slices: int = 1,
                   with_eval: bool = True, where: Target | None = None) -> dict:
    """The report of ``config``'s train step (and evaluation functions) compiled for
    ``topology``; ``DoesNotFitError`` (exit 2) when a chip's memory cannot hold it."""
    where = where or target(topology, num_slices)
    started = time.time()
    task, mesh = build(config, where)
    report = {"topology": topology, "num_slices": num_slices, "chips": where.chips,
              "devices": len(where.devices), "device_kind": where.devices[0].device_kind,
              "batch_per_chip": config.batch_size / where.chips,
              "hbm_gib": where.chip.hbm_bytes / chips.GIB, "usable_gib": where.chip.usable_gib(),
              "mesh": dict(mesh.shape)}
    try:
        compiled, carry = compile_step(config, task, mesh)
    except Exception as error:  # the compiler's out-of-memory error; anything else is raised
        needed = aot.out_of_memory(error)
        if needed is None:
            raise
        report.update(fits=False, memory_gib={"total": needed[0] * where.per_chip},
                      compile_s=time.time() - started)
        raise DoesNotFitError(report, needed[1] * where.per_chip) from None
    report.update(step_figures(compiled, where, task, config), compile_s=time.time() - started)
    report["fits"] = report["memory_gib"]["total"] <= report["usable_gib"]
    if with_eval:
        report["eval"] = _compile_eval(config, task, mesh, carry.state.params)
    if not report["fits"]:
        raise DoesNotFitError(report, report["usable_gib"])
    return report


def step_figures(compiled, where: Target, task, config) -> dict:
    """Per chip: memory, the compiler's and the analytic FLOPs, bytes, collectives, roofline."""
    n = where.per_chip
    memory = {k: v * n for k, v in aot.memory_gib(compiled).items()}
    flops, bytes_accessed = (None if x is None else x * n for x in aot.cost(compiled))
    analytic = task.flops_per_example()
    analytic = analytic * config.batch_size / where.chips if analytic else None
    # The larger count: XLA's cost analysis counts a loop's body once, and under FSDP it may
    # turn a large matmul into a loop over collective-permutes (ViT-L/14 on v5e:8x8: 43.5
    # TFLOP counted, 67.3 analytic); remat's recomputation is in the compiler's count only.
    roofline = aot.roofline_s(max(flops or 0.0, analytic or 0.0), bytes_accessed, where.chip)
    return {"memory_gib": memory, "flops_per_chip": flops, "analytic_flops_per_chip": analytic,
            "bytes_accessed_per_chip": bytes_accessed,
            "collectives": aot.collectives(compiled.as_text()), "roofline_step_s": roofline,
            # Without the compiler's byte count (XLA:GPU deviceless) there is no memory bound.
            "mfu_bound": (None if bytes_accessed is None
                          else (analytic or flops or 0.0) / where.chip.bf16_flops / roofline),
            "peak_tflops": where.chip.bf16_flops / 1e12,
            "hbm_gb_per_s": where.chip.hbm_bytes_per_s / 1e9, "chip_source": where.chip.source}


def _no_fit_message(report: dict, capacity_gib: float) -> str:
    return (f"The step of this config does not fit on {report['topology']}: it needs "
            f"{report['memory_gib']['total']:.2f} GiB per chip ({report['batch_per_chip']:g} "
            f"examples per chip) and a {report['device_kind']} chip has {capacity_gib:.2f} GiB. "
            f"Levers: {LEVERS}; python -m train.compile ... --fit finds the largest batch per "
            "chip that fits for each remat policy.")


def with_remat(config: ml_collections.ConfigDict, policy: str) -> ml_collections.ConfigDict:
    """``config`` with every tower's ``remat_policy`` set (``"none"``: no rematerialisation)."""
    out = copy.deepcopy(config)
    for name in ("image", "text"):
        if name in out.model:
            out.model[name].remat_policy = None if policy == "none" else policy
    return out


def measure(config, where: Target, batch_per_chip: int) -> tuple[bool, float, float]:
    """One compile of the step at ``batch_per_chip``: (fits, GiB per chip it needs, GiB per
    chip there are, as the compiler counts them where it says)."""
    candidate = copy.deepcopy(config)
    candidate.batch_size = int(batch_per_chip * where.chips)
    try:
        report = compile_config(candidate, where.topology, where.num_slices, with_eval=False,
                                where=where)
    except DoesNotFitError as error:
        return False, error.needed_gib, error.capacity_gib
    return True, report["memory_gib"]["total"], report["usable_gib"]


def fits(config, where: Target, batch_per_chip: int) -> bool:
    return measure(config, where, batch_per_chip)[0]


def _crossing(points: dict[int, float], capacity: float) -> float:
    """The batch where memory reaches ``capacity``, on the line through the two measured
    points nearest it (memory grows linearly with the batch: activations), or in proportion
    to the one point there is."""
    nearest = sorted(points, key=lambda b: abs(points[b] - capacity))[:2]
    if len(nearest) == 1 or points[nearest[0]] == points[nearest[1]]:
        return nearest[0] * capacity / max(points[nearest[0]], 1e-9)
    (b0, b1), (m0, m1) = nearest, (points[nearest[0]], points[nearest[1]])
    return b0 + (capacity - m0) * (b1 - b0) / (m1 - m0)


def largest_batch(measure_at: Callable[[int], tuple[bool, float, float]], start: int,
                  capacity: float, limit: int = 1 << 16, granularity: int = 1) -> int:
    """The largest multiple of ``granularity`` examples per chip whose step fits (0 when none
    does), between compiles that fit and compiles that do not: each next size is where the line
    through the measured memory crosses the chip's capacity (a bisection step when that guess
    is no nearer), until the sizes that fit and that do not are ``granularity`` apart (or the
    size that fits reaches ``limit``). ``measure_at(size)`` is ``measure`` at that size;
    ``capacity``: GiB per chip as published (the compiler's figure replaces it once known)."""
    points, low, high, sides = {}, 0, None, []
    size = max(granularity, int(start) // granularity * granularity)
    while high is None or high - low > granularity:
        ok, points[size], there_is = measure_at(size)
        capacity = min(capacity, there_is)  # the compiler's own figure where it gives one
        low, high = (size, high) if ok else (low, size)
        sides.append(ok)
        if high is None and low >= limit:
            return low
        guess = int(_crossing(points, capacity)) // granularity * granularity
        if high is None:  # grow: to the predicted crossing, at least doubling
            size = min(max(guess, 2 * low), limit)
        elif len(sides) > 1 and sides[-1] == sides[-2]:  # the guesses creep up on one side
            size = max((low + high) // 2 // granularity * granularity, low + granularity)
        else:  # the predicted crossing, kept strictly inside the bracket
            size = min(max(guess, low + granularity), high - granularity)
    return low


def fit(config: ml_collections.ConfigDict, topology: str, num_slices: int = 1,
        policies: tuple[str, ...] = REMAT_POLICIES, granularity: int = 1) -> dict:
    """``{policy: largest batch per chip}`` for each remat policy of ``policies``."""
    unknown = sorted(set(policies) - set(REMAT_POLICIES))
    if unknown:
        raise config_checks.ConfigError(f"--fit_policies: unknown remat policies {unknown}; "
                                        f"choose from {list(REMAT_POLICIES)}.")
    where = target(topology, num_slices)
    start = max(config.batch_size // where.chips, 1)
    return {policy: largest_batch(functools.partial(measure, with_remat(config, policy), where),
                                  start, where.chip.usable_gib(),
                                  granularity=granularity)
            for policy in policies}
