"""Ahead-of-time compilation for devices this machine does not have: the compile-only devices
of a TPU topology (``libtpu`` runs the real TPU compiler on a CPU host), abstract arguments
laid out on their mesh, and what the compiled executable says it needs (memory, FLOPs, bytes,
collectives), against the chip's published figures (``chips.py``).

    devices = topology_devices("v5e:4x4")                 # 16 compile-only devices
    compiled = jax.jit(f).lower(*abstract_args).compile()  # the TPU compiler
    memory_gib(compiled), cost(compiled), collectives(compiled.as_text())
"""

import contextlib
import glob
import importlib.util
import os
import re

import jax
import numpy as np
from jax.sharding import NamedSharding

from multimodal_jax.parallel import chips
from multimodal_jax.parallel import gpu_targets

GIB = chips.GIB
EXAMPLE_TOPOLOGIES = ("v4:2x2x2", "v5e:4x4", "v5e:16x16", "v5p:4x4x4", "v6e:8x8")
ACCELERATOR_TYPES = {"v4": "v4-8", "v5e": "v5litepod-4", "v5p": "v5p-8", "v6e": "v6e-4"}
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
               "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
# "%x = bf16[4,128]{...} all-gather(" or "%x = (f32[8], f32[8]) all-reduce-start(" in HLO text
_COLLECTIVE_LINE = re.compile(r"=\s*(\(.*?\)|\S+)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_SHAPE = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([\d,]*)\]")
# The TPU compiler's two phrasings of "this much is needed, this much there is".
_OUT_OF_MEMORY = (re.compile(r"Used ([\d.]+)([KMGT]) of ([\d.]+)([KMGT]) hbm"),
                  re.compile(r"\(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)"))


def _gpu_devices(kind: str, count: str) -> list:
    """``count`` compile-only GPUs of ``kind`` (``gpu_targets.TARGETS``) in one host."""
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--topology={kind}:{count}: give the number of GPUs, e.g. {kind}:8.")
    if not any(_installed(name) for name in gpu_targets.CUDA_PLUGINS):
        raise ValueError(f"Compiling for {kind} needs JAX's CUDA plugin (no GPU is needed): "
                         "`pip install 'jax[cuda13]'` at the version of this jax.")
    from jax.experimental import topologies  # noqa: PLC0415 - only where GPUs are compiled for
    return list(topologies.get_topology_desc(
        platform="cuda", topology_name="", target_config=gpu_targets.TARGETS[kind],
        topology=f"1x1x{count}").devices)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is absent
        return False


def topology_devices(name: str, num_slices: int = 1) -> list:
    """The compile-only devices of TPU topology ``name`` (as JAX names them, e.g.
    ``"v5e:4x4"``), ``num_slices`` slices of it joined over the data-centre network; or of
    GPUs described in ``gpu_targets.py`` (``"h100:8"``: eight in one host)."""
    kind, _, count = name.partition(":")
    if kind in gpu_targets.TARGETS:
        if num_slices > 1:
            raise ValueError("--num_slices applies to TPU topologies only.")
        return _gpu_devices(kind, count)
    if importlib.util.find_spec("libtpu") is None:
        raise ValueError("Compiling for a TPU topology needs libtpu (the TPU compiler): install "
                         "the tpu extra, `pip install -e '.[tpu]'`, which pins the libtpu of this "
                         "jax.")
    from jax.experimental import topologies  # noqa: PLC0415 - only where TPUs are compiled for
    try:
        kwargs = {"num_slices": num_slices} if num_slices > 1 else {}
        with _described_as_a_tpu_host(name):
            return list(topologies.get_topology_desc(topology_name=name, platform="tpu",
                                                     **kwargs).devices)
    except Exception as error:  # noqa: BLE001 - the TPU client's errors for unknown names
        first = (str(error).splitlines() or [""])[0][:300]
        raise ValueError(f"--topology={name!r} is not a TPU topology libtpu knows ({first}); "
                         f"name it as JAX does, e.g. {', '.join(EXAMPLE_TOPOLOGIES)}.") from None


@contextlib.contextmanager
def _described_as_a_tpu_host(topology: str):
    """While libtpu starts: compile-only devices touch no chip, so several processes may hold
    libtpu at once; on a host without TPUs, libtpu is also told what it would ask a TPU VM's
    metadata server (else it logs a screen of warnings). The variables are restored after, so
    that nothing this process starts later (a training run) takes the host for a TPU VM."""
    described = {"ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
    if not (glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")):
        generation = topology.partition(":")[0]
        described.update(TPU_ACCELERATOR_TYPE=ACCELERATOR_TYPES.get(generation, "v5litepod-4"),
                         TPU_SKIP_MDS_QUERY="1", TPU_WORKER_HOSTNAMES="localhost")
    saved = {name: os.environ.get(name) for name in described}
    os.environ.update({k: v for k, v in described.items() if saved[k] is None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def compiler_options(mesh) -> dict:
    """Options for compiling on ``mesh``'s devices. XLA:GPU without a GPU cannot try its
    Triton matmul tilings and may pick one that does not fit a shape (e.g. 77 text tokens):
    compile-only GPUs use cuBLAS for every matmul (memory is close to a real run's; the
    program is not the autotuned one). Set per compile: ``XLA_FLAGS`` reaches the GPU plugin
    only if set before JAX starts."""
    device = mesh.devices.flat[0]
    return {"xla_gpu_enable_triton_gemm": False} if device.platform == "gpu" else {}


def devices_per_chip(devices) -> int:
    """Compile-only devices on one chip: TensorCores (two on v4, one elsewhere)."""
    cores = {getattr(d, "core_on_chip", 0) for d in devices}
    return max(len(cores), 1)


def abstract(tree, shardings):
    """``ShapeDtypeStruct``s of ``tree``'s leaves (arrays or structs), each with its sharding."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                        tree, shardings)


def abstract_batch(spec: dict, sharding: NamedSharding) -> dict:
    """``{key: (shape, dtype)}`` -> ``ShapeDtypeStruct``s split as ``sharding`` says."""
    return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
            for k, (shape, dtype) in spec.items()}


def memory_gib(compiled) -> dict[str, float]:
    """Per device, in GiB: arguments, outputs, the outputs aliased to (donated) arguments,
    temporaries, the generated code, and their total as the device holds them."""
    m = compiled.memory_analysis()
    parts = {"arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
             "aliased": m.alias_size_in_bytes, "temporaries": m.temp_size_in_bytes,
             "code": m.generated_code_size_in_bytes}
    parts["total"] = (parts["arguments"] + parts["outputs"] - parts["aliased"]
                      + parts["temporaries"] + parts["code"])
    return {k: v / GIB for k, v in parts.items()}


def cost(compiled) -> tuple[float | None, float | None]:
    """(FLOPs, bytes accessed) of one run of the executable on one device, as XLA counts;
    (None, None) where the backend gives no analysis (XLA:GPU compiled without a GPU)."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    if not analysis:
        return None, None
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def _shape_bytes(shape_text: str) -> int:
    return sum(DTYPE_BYTES[dtype] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
               for dtype, dims in _SHAPE.findall(shape_text))


def collectives(hlo_text: str) -> dict[str, dict[str, float]]:
    """``{op: {"count", "bytes"}}`` of the collectives in optimised HLO text (an async pair
    counts once, at its ``-start``); bytes are the results' sizes on one device."""
    out = {op: {"count": 0, "bytes": 0} for op in COLLECTIVES}
    for line in hlo_text.splitlines():
        match = _COLLECTIVE_LINE.search(line)
        if match:
            out[match.group(2)]["count"] += 1
            out[match.group(2)]["bytes"] += _shape_bytes(match.group(1))
    return out


def out_of_memory(error: BaseException) -> tuple[float, float] | None:
    """(GiB needed, GiB there are) from the TPU compiler's RESOURCE_EXHAUSTED error, else None."""
    match = next(filter(None, (p.search(str(error)) for p in _OUT_OF_MEMORY)), None)
    if "RESOURCE_EXHAUSTED" not in str(error) or not match:
        return None
    scale = {"K": 2 ** -20, "M": 2 ** -10, "G": 1.0, "T": 2 ** 10}
    return (float(match.group(1)) * scale[match.group(2)],
            float(match.group(3)) * scale[match.group(4)])


def roofline_s(flops: float, bytes_accessed: float | None, chip: chips.Chip) -> float:
    """The step's lower bound on one chip: compute at the bf16 peak or traffic at the HBM
    bandwidth (when known), whichever takes longer."""
    return max(flops / chip.bf16_flops, (bytes_accessed or 0.0) / chip.hbm_bytes_per_s)

