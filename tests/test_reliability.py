"""Crash safety in process: damaged and half-written checkpoints, the non-finite guard under
both drivers, and the loop's answer to a NaN ("skip" counts it, "stop" saves the last good
state and names the step and the value)."""

import glob
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from multimodal_jax import tasks
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import guards
from multimodal_jax.runtime import loop
from multimodal_jax.tasks import contrastive
from tests import env as test_env
from tests import tiny

_state = tiny.small_train_state


def _saved(directory, steps=(1, 2, 3)) -> checkpoint.Checkpointer:
    """A checkpointer over ``directory`` holding ``steps`` (the state at step s has value s)."""
    ckpt = checkpoint.Checkpointer(directory)
    for s in steps:
        ckpt.save(_state(float(s), s))
        ckpt.wait()
    return ckpt


def _restored_step(directory) -> int:
    ckpt = checkpoint.Checkpointer(directory)
    try:
        state = ckpt.restore(_state())
        np.testing.assert_array_equal(state.params["w"], float(state.step))
        return int(state.step)
    finally:
        ckpt.close()


def _data_files(step_dir):
    """The array data files of a saved step (what a half-copied checkpoint lacks)."""
    return [f for f in glob.glob(os.path.join(step_dir, "**", "d", "*"), recursive=True)
            if os.path.isfile(f)]


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip_bytes"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    directory = str(tmp_path / "checkpoints")
    _saved(directory).close()
    files = _data_files(os.path.join(directory, "3"))
    assert files
    for path in files:
        size = os.path.getsize(path)
        if damage == "truncate":
            os.truncate(path, size // 2)
        elif damage == "delete":
            os.remove(path)
        else:  # bytes changed in place, size kept: only the fingerprint can tell
            with open(path, "r+b") as f:
                f.seek(size // 2)
                flipped = bytes(b ^ 0xFF for b in f.read(8))
                f.seek(size // 2)
                f.write(flipped)
    with caplog.at_level(logging.WARNING):
        assert _restored_step(directory) == 2
    assert "step 3" in caplog.text and "damaged" in caplog.text
    assert os.path.isdir(os.path.join(directory, "3.damaged"))  # set aside, not deleted
    ckpt = checkpoint.Checkpointer(directory)  # and step 3 can be saved again
    assert ckpt.save(_state(3.0, 3))
    ckpt.close()
    assert _restored_step(directory) == 3


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _saved(directory, steps=(1, 2)).close()
    for step in (1, 2):
        for path in _data_files(os.path.join(directory, str(step))):
            os.remove(path)
    with pytest.raises(checkpoint.CheckpointError, match="None of the checkpoints"):
        _restored_step(directory)


def test_a_checkpoint_of_another_model_is_a_clear_error_and_is_kept(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _saved(directory, steps=(1,)).close()
    ckpt = checkpoint.Checkpointer(directory)
    with pytest.raises(checkpoint.CheckpointError, match=r"params/b is float32\[3\] there and float32\[5\] here"):
        ckpt.restore(_state(width=5))
    ckpt.close()
    assert os.listdir(directory) == ["1"]


def test_leftover_temporary_checkpoint_folder_is_ignored_and_removed(tmp_path):
    """What ``kill -9`` during an async save leaves: a half-written ``*.orbax-checkpoint-tmp-*``."""
    directory = str(tmp_path / "checkpoints")
    _saved(directory, steps=(1, 2)).close()
    leftover = os.path.join(directory, "3.orbax-checkpoint-tmp-1795880000000000")
    shutil.copytree(os.path.join(directory, "2"), leftover)
    for path in _data_files(leftover)[::2]:
        os.remove(path)
    ckpt = checkpoint.Checkpointer(directory)
    assert ckpt.all_steps() == [1, 2]
    assert int(ckpt.restore(_state()).step) == 2
    assert ckpt.save(_state(3.0, 3))  # the step the dead process was saving
    ckpt.close()
    assert sorted(os.listdir(directory)) == ["1", "2", "3"]
    assert _restored_step(directory) == 3


def test_a_reader_changes_nothing_in_the_workdir(tmp_path, caplog):
    """``train.evaluate`` beside a training run: a temporary folder may be the writer's save in
    flight, so it stays; a damaged step is skipped, not renamed."""
    directory = str(tmp_path / "checkpoints")
    _saved(directory).close()
    in_flight = "4.orbax-checkpoint-tmp-1795880000000000"
    shutil.copytree(os.path.join(directory, "2"), os.path.join(directory, in_flight))
    for path in _data_files(os.path.join(directory, "3")):
        os.remove(path)
    reader = checkpoint.Checkpointer(directory, read_only=True)
    with caplog.at_level(logging.WARNING):
        state = reader.restore(_state())
    reader.close()
    assert int(state.step) == 2
    assert "the next training run there sets it aside" in caplog.text
    assert sorted(os.listdir(directory)) == ["1", "2", "3", in_flight]


def test_fingerprint_is_independent_of_the_device_layout():
    values = {"a": jnp.arange(64, dtype=jnp.float32).reshape(8, 8) / 7, "n": jnp.arange(16)}
    mesh = mesh_lib.data_mesh()
    split = jax.device_put(values, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    one = jax.device_put(values, jax.devices()[0])
    assert checkpoint.fingerprint(split) == checkpoint.fingerprint(one)
    changed = {**values, "a": values["a"].at[3, 3].add(1e-6)}
    assert checkpoint.fingerprint(changed) != checkpoint.fingerprint(values)


# ----------------------------------------------------------------------------- the guard


def _toy_step(state, batch, rng):
    """Least squares on the batch, gradients summed over ``"data"`` as every task does."""
    del rng

    def loss_fn(params):
        return jnp.sum((batch["x"] @ params["w"] + params["b"]) ** 2) / 64

    loss, grads = jax.value_and_grad(loss_fn)(mesh_lib.as_varying(state.params))
    grads = jax.lax.psum(grads, "data")
    return state.apply_gradients(grads=grads), {"loss": jax.lax.psum(loss, "data"),
                                                "grad_norm": optax.tree.norm(grads)}


def _run_toy(driver_name, step_fn, batches, guard=None):
    mesh = mesh_lib.data_mesh()
    driver = drivers.make_driver(driver_name, step_fn, mesh)
    carry = guards.Carry(_state(), guard) if guard is not None else _state()
    carry = driver.put_state(carry)
    for x in batches:
        carry, _ = driver.step(carry, driver.put_batch({"x": x}), jax.random.key(0))
    return jax.device_get(driver.get_state(carry))


def _batches(bad_at=()):
    rng = np.random.default_rng(0)
    out = [rng.normal(size=(16, 4)).astype(np.float32) for _ in range(5)]
    for i in bad_at:
        out[i][3, 1] = np.inf if i % 2 else np.nan  # one example on one device
    return out


@pytest.mark.parametrize("driver_name", ["mesh", "pmap"])
def test_guard_skips_a_nonfinite_update_on_every_device(driver_name):
    plain = _run_toy(driver_name, _toy_step, _batches())
    state, guard = _run_toy(driver_name, guards.guarded(_toy_step, "skip"), _batches(),
                            guards.init())
    jax.tree.map(np.testing.assert_array_equal, state.params, plain.params)  # a no-op when finite
    assert int(guard["skipped"]) == 0

    state, guard = _run_toy(driver_name, guards.guarded(_toy_step, "skip"), _batches([1, 3]),
                            guards.init())
    assert int(guard["skipped"]) == 2 and int(guard["bad_step"]) == 4 and int(state.step) == 5
    names = guards.checked_names({"loss": 0, "grad_norm": 0})
    assert guards.describe(int(guard["bad_what"]), names) == "grad_norm, loss, state"
    expected = _run_toy(driver_name, _toy_step, [b for i, b in enumerate(_batches()) if i not in (1, 3)])
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected.params)):
        np.testing.assert_allclose(got, want, rtol=1e-6)  # the bad batches left no trace


@pytest.mark.parametrize("driver_name", ["mesh", "pmap"])
def test_guard_stop_keeps_the_last_good_state(driver_name):
    state, guard = _run_toy(driver_name, guards.guarded(_toy_step, "stop"), _batches([2]),
                            guards.init())
    good = _run_toy(driver_name, _toy_step, _batches()[:2])
    assert int(guard["bad_step"]) == 3 and int(state.step) == 2
    jax.tree.map(np.testing.assert_array_equal, state.params, good.params)
    jax.tree.map(np.testing.assert_array_equal, state.opt_state, good.opt_state)


# ----------------------------------------------------------------------------- the loop


class NanAtStep3(contrastive.ContrastiveTask):
    """The contrastive task whose step 3 produces a NaN loss and NaN gradients."""

    def train_step(self):
        inner = super().train_step()

        def step(state, batch, rng):
            new_state, metrics = inner(state, batch, rng)
            bad = new_state.step == 3
            poison = lambda x: jnp.where(bad, x * jnp.nan, x)  # noqa: E731
            new_state = new_state.replace(params=jax.tree.map(poison, new_state.params))
            return new_state, {**metrics, "loss": poison(metrics["loss"])}

        return step


def _nan_config(data_dir, mode):
    config = tiny.tiny_shapes_config(data_dir)
    config.task, config.on_nonfinite = "nan_at_step_3", mode
    config.total_steps, config.checkpoint_every_steps, config.log_every_steps = 6, 2, 4
    config.tokenizer.kind = "bytes"  # no SentencePiece training in each workdir
    return config


def _final(config, workdir):
    task = tasks.get_task(config.task)(config, workdir)
    template = jax.device_put(task.create_state(jax.random.key(config.seed)),
                              mesh_lib.replicated(mesh_lib.data_mesh()))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    state, latest = ckpt.restore(template), ckpt.all_steps()[-1]
    metadata = ckpt.metadata(latest)
    ckpt.close()
    return state, metadata


def test_loop_skips_a_nan_step_and_counts_it(shapes_data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "nan_at_step_3", NanAtStep3)
    config = _nan_config(shapes_data_dir, "skip")
    metrics = loop.train_and_evaluate(config, str(tmp_path), stop_at_step=4)  # no evaluation
    assert metrics["step"] == 4 and metrics["train/nonfinite_skipped"] == 1
    state, metadata = _final(config, str(tmp_path))
    assert int(state.step) == 4 and metadata[loop.SKIPPED] == 1
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_loop_stops_at_a_nan_with_the_last_good_state(shapes_data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "nan_at_step_3", NanAtStep3)
    config = _nan_config(shapes_data_dir, "stop")
    with pytest.raises(guards.NonFiniteError, match=r"Step 3 produced a non-finite loss, state") as info:
        loop.train_and_evaluate(config, str(tmp_path))
    assert info.value.step == 3 and "step 2, is checkpointed" in str(info.value)
    state, _ = _final(config, str(tmp_path))
    assert int(state.step) == 2
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


# ----------------------------------------------------------------------------- several hosts

HOST = '''
import sys, time
import jax
process_id, port, service = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_enable_preemption_service", service)
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
from multimodal_jax.runtime import preemption
with preemption.PreemptionWatcher(sync_every_steps=4) as watcher:
    print("ready", flush=True)
    for step in range(1, 1_000_000):
        time.sleep(0.01 * (1 + process_id))  # the hosts do not run in lockstep
        if watcher.should_stop(step):
            print("stopped at", step, flush=True)
            break
'''


@pytest.mark.parametrize("service", [True, False], ids=["jax_preemption_service", "allgather"])
def test_sigterm_on_one_host_stops_every_host_at_the_same_step(tmp_path, service):
    """Two processes (``jax.distributed`` on localhost); only the second gets the SIGTERM."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    script = tmp_path / "host.py"
    script.write_text(HOST)
    env = test_env.with_devices(1, JAX_PLATFORMS="cpu",
                                PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hosts = [subprocess.Popen([sys.executable, str(script), str(i), str(port), str(int(service))],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    try:
        for host in hosts:  # (log lines may come first)
            lines = iter(host.stdout.readline, "")
            assert any(line.strip() == "ready" for line in lines), host.communicate()[0]
        time.sleep(0.5)
        hosts[1].send_signal(signal.SIGTERM)
        outputs = [host.communicate(timeout=300)[0] for host in hosts]
    finally:
        for host in hosts:
            host.kill()
    stops = [[line for line in out.splitlines() if line.startswith("stopped at")] for out in outputs]
    assert all(len(s) == 1 for s in stops), outputs
    assert stops[0] == stops[1], stops
