"""A real 2-process job on localhost (gloo collectives, 2 CPU devices each) trains the tiny
contrastive model with each driver (the mesh driver stops, restores its checkpoint on both
processes and finishes), ending with the parameters of one process with 4 devices, restored
here on 8; only process 0 writes logs and pictures.

This file is also the worker: ``python tests/test_multihost.py WORKDIR DATA_DIR PORT ID N``.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests import env as test_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVERS = ("mesh", "pmap")
STOP_AT = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(workdir, data_dir, port, process_id, num_processes, devices):
    env = test_env.with_devices(devices, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
                                TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), workdir, data_dir, str(port), str(process_id),
         str(num_processes)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def _config(data_dir, driver):
    """The tiny shapes config, kept cheap: byte tokens (no tokenizer to train), one zero-shot
    split."""
    from tests import tiny  # noqa: PLC0415
    config = tiny.tiny_shapes_config(data_dir, driver)
    config.tokenizer.update(kind="bytes", path="", vocab_size=259)
    config.evaluation.zeroshot_splits = ("test",)
    return config


def test_two_processes_equal_one_process_with_four_devices(shapes_data_dir, tmp_path):
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    multi, single = str(tmp_path / "two_processes"), str(tmp_path / "one_process")
    port = _free_port()
    jobs = [_start(multi, shapes_data_dir, port, i, 2, devices=2) for i in range(2)]
    jobs.append(_start(single, shapes_data_dir, 0, 0, 1, devices=4))
    outputs = []
    try:
        for job in jobs:
            outputs.append(job.communicate(timeout=600)[0])
    finally:
        for job in jobs:
            job.kill()
    for job, output in zip(jobs, outputs):
        assert job.returncode == 0, output[-3000:]
    assert "process 0 of 2" in outputs[0] and "process 1 of 2" in outputs[1], outputs[0][-2000:]

    from tests import runs  # noqa: PLC0415 - this file is also the worker: JAX starts there later
    step_b, params_b = runs.final_params(os.path.join(single, "mesh"))
    for driver in DRIVERS:
        config = _config(shapes_data_dir, driver)
        step_a, params_a = runs.final_params(os.path.join(multi, driver))
        assert step_a == step_b == config.total_steps
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     params_a, params_b)
        # One writer: each logged step appears once (also where the run stopped and resumed).
        lines = [json.loads(line) for line in open(os.path.join(multi, driver, "metrics.jsonl"))]
        assert [e["step"] for e in lines if "train/loss" in e] == [2, 4, 6]
        assert all(e["train/tflops_per_device"] > 0 for e in lines if "train/loss" in e)
    # The pmap run ended with the evaluation: its pictures, from process 0.
    assert any(p.endswith(".png") for p in os.listdir(os.path.join(multi, "pmap", "pictures")))


def test_incomplete_flags_get_a_clear_error():
    from multimodal_jax.runtime import distributed  # noqa: PLC0415
    with pytest.raises(ValueError, match="--process_id"):
        distributed.initialize(coordinator_address="localhost:1234", num_processes=2)
    with pytest.raises(ValueError, match="must be in 0..1"):
        distributed.initialize("localhost:1234", 2, 2)
    assert distributed.initialize(num_processes=1) is False  # one process: nothing to join
    assert distributed.detected_cluster({}) is None or distributed.detected_cluster({}) == "tpu"
    assert distributed.detected_cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == "slurm"
    assert distributed.detected_cluster({"OMPI_COMM_WORLD_SIZE": "2"}) == "open_mpi"


def _worker(workdir, data_dir, port, process_id, num_processes):
    """One process of the job: the mesh driver stopped at STOP_AT and resumed, then pmap with
    the final evaluation; the one-process reference runs the mesh driver straight (resuming is
    bitwise-neutral and pmap equals mesh: tests/test_train_loop.py, test_contrastive_step.py).
    ``stop_at_step=total_steps`` ends a run with its checkpoint and no evaluation (cheaper)."""
    sys.path.insert(0, ROOT)
    import logging  # noqa: PLC0415
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from multimodal_jax.runtime import distributed  # noqa: PLC0415
    distributed.initialize(f"localhost:{port}" if num_processes > 1 else None, num_processes,
                           process_id if num_processes > 1 else None)
    import jax  # noqa: PLC0415

    from multimodal_jax.runtime import loop  # noqa: PLC0415
    print(f"process {jax.process_index()} of {jax.process_count()}", flush=True)
    # Compiled programs are shared through the suite's cache (tests/conftest.py, inherited):
    # the resumed run and the second process find what the first compiled.
    for driver in DRIVERS if num_processes > 1 else DRIVERS[:1]:
        config, path = _config(data_dir, driver), os.path.join(workdir, driver)
        if driver == "mesh" and num_processes > 1:
            assert loop.train_and_evaluate(config, path, stop_at_step=STOP_AT)["step"] == STOP_AT
        stop = None if driver == "pmap" else config.total_steps
        assert loop.train_and_evaluate(config, path, stop_at_step=stop)["step"] == config.total_steps


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
