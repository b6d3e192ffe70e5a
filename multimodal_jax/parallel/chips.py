"""Published per-chip figures of the accelerators a run can be compiled for: HBM capacity, dense
bfloat16 peak and HBM bandwidth, with where each figure is published. They turn a compiled
step's memory and cost analysis into "does it fit" and a roofline step time.

JAX's compile-only TPU devices are TensorCores: a v4 topology lists two devices per chip, the
other generations one; per-device figures are the chip's divided by its devices.
"""

import dataclasses
import os
from typing import Optional

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip as its vendor publishes it."""

    name: str
    hbm_bytes: float
    bf16_flops: float  # dense, per second
    hbm_bytes_per_s: float
    source: str
    gpu: bool = False

    def usable_gib(self, environ=None) -> float:
        """What a JAX process may fill: all of a TPU's HBM; of a GPU's, the share JAX
        preallocates (``XLA_PYTHON_CLIENT_MEM_FRACTION``, 0.75 unless set)."""
        share = 1.0
        if self.gpu:
            share = float((os.environ if environ is None else environ).get(
                "XLA_PYTHON_CLIENT_MEM_FRACTION", "0.75"))
        return self.hbm_bytes * share / GIB


# Matched by a substring of ``device.device_kind`` (first match wins: longer names first).
CHIPS = (
    Chip("TPU v6 lite", 32 * GIB, 918e12, 1640e9, "https://cloud.google.com/tpu/docs/v6e"),
    Chip("TPU v5 lite", 16 * GIB, 197e12, 819e9, "https://cloud.google.com/tpu/docs/v5e"),
    Chip("TPU v5", 95 * GIB, 459e12, 2765e9, "https://cloud.google.com/tpu/docs/v5p"),
    Chip("TPU v4", 32 * GIB, 275e12, 1228e9, "https://cloud.google.com/tpu/docs/v4"),
    Chip("H200", 141e9, 989e12, 4.8e12, "https://www.nvidia.com/en-us/data-center/h200/", gpu=True),
    Chip("H100", 80e9, 989e12, 3.35e12, "https://www.nvidia.com/en-us/data-center/h100/", gpu=True),
    Chip("A100", 80e9, 312e12, 2.039e12, "https://www.nvidia.com/en-us/data-center/a100/", gpu=True),
)


def chip_of(device_kind: str) -> Optional[Chip]:
    """The published figures of ``device_kind`` (e.g. "TPU v5 lite"), or None if unknown."""
    return next((chip for chip in CHIPS if chip.name in device_kind), None)
