"""The environment of the processes the tests start: the suite's XLA flags (its optimisation
level, see conftest.py) with a device count of their own, and its compilation cache."""

import os
import re

DEVICE_COUNT = re.compile(r"--xla_force_host_platform_device_count=\d+")


def with_devices(devices: int, **extra: str) -> dict:
    """``os.environ`` (conftest's settings included) where XLA simulates ``devices`` CPU
    devices, updated by ``extra``."""
    flags = DEVICE_COUNT.sub("", os.environ.get("XLA_FLAGS", "")).split()
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return {**os.environ, "XLA_FLAGS": " ".join(flags), **extra}
