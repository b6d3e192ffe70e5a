"""The train step compiled for a real TPU topology by the TPU compiler, on this CPU host
(libtpu, compile-only devices): the report is the executable's own memory and cost analysis,
its FLOPs agree with the analytic count, FSDP splits the state, a config too big for the chip
exits 2 naming the levers, and ``--fit`` finds the boundary between a batch that fits and one
that does not. Tiny ViT classifiers on ``v5e:2x2``: compiling for a TPU takes seconds to a
minute per program here."""

import functools
import importlib.util
import os
import subprocess
import sys

import pytest

from tests import env as test_env
from tests import tiny

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                 reason="libtpu (the tpu extra) is not installed")]
TOPOLOGY = "v5e:2x2"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vit(width=256, image=32, patch=8, batch=256, fsdp=1, attention="flax"):
    """A one-block ViT classifier whose matmuls dominate its step."""
    config = tiny.tiny_classifier_config("")
    config.batch_size = batch
    config.data.image_size = image
    config.model.image.update(width=width, mlp_dim=4 * width, num_heads=4, patch_size=patch,
                              attention_impl=attention)
    if fsdp > 1:
        config.parallel.update(fsdp=fsdp, rules=((".*", "fsdp"),))
    return config


@pytest.fixture(scope="module")
def where():
    from multimodal_jax.runtime import pod_compile  # noqa: PLC0415 - libtpu may be missing
    return pod_compile.target(TOPOLOGY)


def _compiled(config, where):
    from multimodal_jax.runtime import pod_compile  # noqa: PLC0415
    task, mesh = pod_compile.build(config, where)
    compiled, _ = pod_compile.compile_step(config, task, mesh)
    return compiled, pod_compile.step_figures(compiled, where, task, config)


def test_the_report_is_the_executables_analysis_and_its_flops_the_analytic_count(where):
    compiled, figures = _compiled(_vit(), where)
    memory = compiled.memory_analysis()
    gib = 2 ** 30
    assert where.chips == 4 and where.per_chip == 1
    assert figures["memory_gib"]["arguments"] == memory.argument_size_in_bytes / gib
    assert figures["memory_gib"]["temporaries"] == memory.temp_size_in_bytes / gib
    assert figures["memory_gib"]["aliased"] == memory.alias_size_in_bytes / gib > 0  # donated
    assert figures["memory_gib"]["total"] == pytest.approx(
        (memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
         + memory.temp_size_in_bytes + memory.generated_code_size_in_bytes) / gib)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    assert figures["flops_per_chip"] == cost["flops"]
    assert figures["flops_per_chip"] == pytest.approx(figures["analytic_flops_per_chip"], rel=0.05)
    assert figures["collectives"]["all-reduce"]["count"] >= 1  # the gradients' sum over "data"
    assert 0 < figures["mfu_bound"] <= 1


def test_fsdp_over_four_chips_cuts_the_state_a_chip_holds_to_a_quarter(where):
    # 4 patches: the state dominates the arguments; width 512 (heads of 128) keeps every split
    # array a whole number of the TPU's 128-wide tiles, so padding does not blur the ratio.
    _, replicated = _compiled(_vit(width=512, image=16), where)
    _, split = _compiled(_vit(width=512, image=16, fsdp=4), where)
    ratio = split["memory_gib"]["arguments"] / replicated["memory_gib"]["arguments"]
    assert 0.22 < ratio < 0.30, ratio  # the state is split; the batch slice stays as it was
    assert split["collectives"]["all-gather"]["count"] > replicated["collectives"]["all-gather"]["count"]


def test_a_config_too_big_for_the_chip_exits_2_with_the_figures_and_the_levers(tmp_path):
    command = [sys.executable, "-m", "train.compile", "--config", "configs/vit_shapes.py",
               "--topology", TOPOLOGY, "--config.data.image_size=512",
               "--config.model.image.patch_size=4", "--config.batch_size=4096"]
    result = subprocess.run(command, cwd=ROOT, env=test_env.with_devices(1),
                            capture_output=True, text=True, timeout=900)
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(ours) == 1 and "does not fit on v5e:2x2" in ours[0], result.stderr[-3000:]
    for lever in ("remat_policy", "parallel.fsdp", "batch_size", "accum_steps", "mu_dtype"):
        assert lever in ours[0], lever
    assert "Traceback" not in result.stderr


def test_fit_finds_the_largest_batch_per_chip_that_fits(where):
    from multimodal_jax.runtime import pod_compile  # noqa: PLC0415
    # 16384 patch tokens: one example's step takes about 8 GiB of the chip's 15.75 (few
    # compiles: those that fit take half a minute each, those that do not a few seconds).
    config = pod_compile.with_remat(_vit(width=32, image=256, patch=2, batch=4), "none")
    measure_at = functools.partial(pod_compile.measure, config, where)
    best = pod_compile.largest_batch(measure_at, start=1, capacity=where.chip.hbm_bytes / 2 ** 30)
    assert best >= 1
    assert pod_compile.fits(config, where, best) and not pod_compile.fits(config, where, best + 1)


def test_two_slices_get_a_hybrid_mesh_with_fsdp_inside_each_slice():
    # Attention through jax.nn.dot_product_attention (model.image.attention_impl="xla"): it
    # lowers for the TPU too.
    from multimodal_jax.parallel import mesh as mesh_lib  # noqa: PLC0415
    from multimodal_jax.runtime import pod_compile  # noqa: PLC0415
    where = pod_compile.target(TOPOLOGY, num_slices=2)
    assert where.chips == 8 and mesh_lib.num_slices(where.devices) == 2
    mesh = mesh_lib.make_mesh(2, where.devices)
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2}
    for group in mesh.devices:  # an FSDP group never spans the data-centre network
        assert len({d.slice_index for d in group}) == 1
    assert {d.slice_index for d in mesh.devices[:2].flat} != {d.slice_index for d in mesh.devices[2:].flat}
    report = pod_compile.compile_config(_vit(width=128, image=16, batch=64, fsdp=2, attention="xla"), TOPOLOGY,
                                        num_slices=2, with_eval=False, where=where)
    assert report["fits"] and report["chips"] == 8 and report["mesh"] == {"data": 4, "fsdp": 2}
