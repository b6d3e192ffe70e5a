"""Analytic FLOP counts per example for this package's models, and the MFU meter of the loop.

A multiply-add is 2 FLOPs. Counted: every matmul and convolution the model runs, attention
included (the full ``L x L`` score matrix even when causal: that is what XLA computes).
Not counted: elementwise work (norms, activations, softmax, masks), about 1% of a ViT-B/16;
``tests/test_flops.py`` checks the counts against XLA's ``cost_analysis`` (within 5%).
Training costs 3x the forward pass (the backward pass is 2x); a rematerialised forward pass
is not counted, so MFU measures model FLOPs, as MaxText and PaLM do.
"""

import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from multimodal_jax.models.text import TextTransformer
from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT

TRAIN_MULTIPLIER = 3  # forward + backward (2x forward)


def encoder(tokens: int, width: int, depth: int, mlp_dim: int) -> float:
    """A stack of ``depth`` pre-LN blocks on ``tokens`` tokens: q, k, v and output projections
    (``4 D^2``), the two MLP layers (``2 D M``) per token, and ``QK^T`` and ``AV`` (``2 L^2 D``)."""
    per_block = 2 * tokens * (4 * width * width + 2 * width * mlp_dim) + 4 * tokens * tokens * width
    return float(depth * per_block)


def map_head(tokens: int, width: int, mlp_dim: int) -> float:
    """Attention pooling: one probe query over ``tokens`` keys/values, then an MLP on it."""
    kv = 2 * tokens * width * 2 * width
    return float(kv + 2 * 2 * width * width + 4 * tokens * width + 4 * width * mlp_dim)


def vit(model: ViT, image_size: int) -> float:
    """Forward FLOPs of one ``image_size`` x ``image_size`` image through ``model``."""
    s = model.size()
    patches = (image_size // s["patch_size"]) ** 2
    tokens = patches + (1 if model.pool == "tok" else 0)
    flops = 2 * patches * s["patch_size"] ** 2 * 3 * s["width"]
    flops += encoder(tokens, s["width"], s["depth"], s["mlp_dim"])
    if model.pool == "map":
        flops += map_head(tokens, s["width"], s["mlp_dim"])
    if model.num_classes:
        flops += 2 * s["width"] * model.num_classes
    return float(flops)


def text(model: TextTransformer, length: int) -> float:
    """Forward FLOPs of one text of ``length`` tokens (the embedding lookup is a gather: 0)."""
    mlp_dim = model.mlp_dim or 4 * model.width
    flops = encoder(length, model.width, model.depth, mlp_dim)
    if model.pool == "map":
        flops += map_head(length, model.width, mlp_dim)
    return float(flops)


def two_tower(model: TwoTower, image_size: int, length: int) -> float:
    """Forward FLOPs of one image-text pair through both towers and both projections."""
    image_width = model.image_tower.size()["width"]
    projected = (image_width if model.project_image else 0) + model.text_tower.width
    projections = 2 * projected * model.embed_dim
    return vit(model.image_tower, image_size) + text(model.text_tower, length) + projections


def contrastive_loss(embed_dim: int, global_batch: int, loss: str) -> float:
    """Per example: its row of image-text similarities over the global batch (softmax: the
    image->text and the text->image rows)."""
    return float((2 if loss == "softmax" else 1) * 2 * global_batch * embed_dim)


def contrastive_train(model: TwoTower, image_size: int, length: int, global_batch: int,
                      loss: str) -> float:
    """Training FLOPs of one image-text pair: 3x the forward pass of both towers, plus its
    row of similarities over the global batch (``contrastive_loss``)."""
    forward = two_tower(model, image_size, length) + contrastive_loss(model.embed_dim,
                                                                      global_batch, loss)
    return TRAIN_MULTIPLIER * forward


def classification_train(model: ViT, image_size: int) -> float:
    """Training FLOPs of one image through a ViT classifier: 3x its forward pass."""
    return TRAIN_MULTIPLIER * vit(model, image_size)


def xla_flops(fn, *args) -> float:
    """What XLA's ``cost_analysis`` says ``jit(fn)(*args)`` costs (args may be abstract)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def measure_peak_flops(devices=None, size: int = 512, repeats: int = 3) -> float:
    """Per-device FLOP/s of a float32 ``size^3`` matmul running on all ``devices`` at once
    (the reference peak on CPU, where the devices share the host's cores)."""
    devices = jax.local_devices() if devices is None else devices
    mesh = Mesh(np.asarray(devices), ("d",))
    x = jax.device_put(jnp.ones((len(devices) * size, size), jnp.float32) / size,
                       NamedSharding(mesh, P("d")))
    matmul = jax.jit(jax.shard_map(lambda a: a @ a, mesh=mesh, in_specs=P("d"),
                                   out_specs=P("d")))
    jax.block_until_ready(matmul(x))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(matmul(x))
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best


class Throughput:
    """Step time, TFLOP/s per device and MFU over the steps since the previous call.

    ``flops_per_step`` is the analytic training count of one global batch (None: only the step
    time is reported); ``peak`` is one device's peak FLOP/s. The first interval includes the
    compilation of the step.
    """

    def __init__(self, flops_per_step: Optional[float], num_devices: int, peak: float,
                 step: int = 0):
        self.flops_per_step, self.num_devices, self.peak = flops_per_step, num_devices, peak
        self._step, self._time = step, time.perf_counter()

    def __call__(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        seconds = (now - self._time) / max(step - self._step, 1)
        self._step, self._time = step, now
        out = {"step_time_s": seconds}
        if self.flops_per_step:
            per_device = self.flops_per_step / seconds / self.num_devices
            out.update(tflops_per_device=per_device / 1e12, mfu=per_device / self.peak)
        return out


def meter_for(flops_per_example: Optional[float], config, num_devices: int,
              start_step: int) -> Throughput:
    """The loop's meter: ``flops_per_example`` (a task's analytic count; None: step time only)
    times ``config.batch_size``, against the peak of ``config.parallel.peak_tflops`` (per
    device; 0 or absent: measured here)."""
    peak_tflops = config.parallel.get("peak_tflops", 0.0) if "parallel" in config else 0.0
    peak = peak_tflops * 1e12 if peak_tflops else measure_peak_flops()
    flops = flops_per_example * config.batch_size if flops_per_example else None
    return Throughput(flops, num_devices, peak, start_step)
