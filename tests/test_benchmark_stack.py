"""The benchmarks' stack in one process, as ``python -m benchmarks.clip_step`` loads it (torch,
then transformers, JAX and TensorFlow): one tiny step on each side of both comparisons, whose
first losses must agree. A combination of versions that crashes on import or in a step (a
segmentation fault) fails here, in CI, rather than on a user's first benchmark."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests import env as test_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """
import importlib.util
import json
from benchmarks import clip_step, vit_step
clip = dict(batch=8, image=16, patch=8, vision=(32, 1, 64, 2), text=(32, 1, 64, 2), length=8,
            vocab=64, proj=16)
vit = dict(batch=8, image=16, patch=8, dims=(32, 1, 64, 2), classes=4)
out = {}
for name, module, size in (("clip", clip_step, clip), ("vit", vit_step, vit)):
    r = module.COMPARISON.measure(name, size, rounds=1, steps=1, warmup=0)
    out[name] = {"first_loss": r["first_loss"], "ratio": r["ours"].median / r["torch"].median}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_one_tiny_step_of_each_side_in_the_benchmark_process():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env=test_env.with_devices(1))
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("clip", "vit"):
        ours, theirs = figures[name]["first_loss"]
        assert abs(ours - theirs) <= 1e-4 * abs(theirs), name
        assert figures[name]["ratio"] > 0


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="triton is not installed (it comes with CUDA builds of torch >= 2.14)")
def test_triton_and_tensorflow_load_in_one_process_in_either_order():
    """TensorFlow exports its LLVM's symbols; a libtriton loaded after it crashed the process.
    Importing multimodal_jax first loads triton first (multimodal_jax/__init__.py)."""
    script = "import multimodal_jax, tensorflow, torch._dynamo, triton; print('loaded')"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=test_env.with_devices(1))
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-2000:]
