"""Workdirs in a Cloud Storage bucket (``gs://bucket/...``), against a local emulator
(``tests/gcs_emulator.py``, the ``gcs_emulator`` fixture): the path layer, the probe of an
unwritable bucket, the lock object, the run's own files, Orbax's commit mark, a tiny run
stopped, resumed and evaluated in a bucket, bitwise equal to one that never stopped, a run's
export written into a bucket, and a model initialised from a bucket workdir (``init_from``).

What these tests do not reach, and why: TensorFlow's own GCS client (``tf.io.gfile``; TFDS's
record reading and ``tf.summary`` go through it) cannot be pointed at an emulator, so every
path here goes through ``etils.epath``'s other backend, gcsfs (``EPATH_USE_TF=false``); the
emulator ignores preconditions, so two runs creating the lock at the same instant are not raced
here (one after the other is)."""

import json
import logging
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from multimodal_jax import inference
from multimodal_jax import paths
from multimodal_jax import run_files
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.cli import export as export_cli
from multimodal_jax.data import datasets
from multimodal_jax.data import tfrecord_shards
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.pretrained import init_from
from multimodal_jax.runtime import bucket_lock
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import metrics_writer
from multimodal_jax.runtime import run_record
from multimodal_jax.runtime import workdir_lock
from multimodal_jax.runtime import write_failures
from multimodal_jax.tasks import contrastive
from tests import env as test_env
from tests import runs
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _url(name: str) -> str:
    """A fresh folder of the emulator's bucket for one test."""
    return f"gs://bucket/{name}"


def test_paths_tell_urls_from_local_paths():
    assert paths.is_url("gs://b/run") and paths.is_gcs("gs://b/run")
    assert not paths.is_url("/tmp/run") and not paths.is_gcs("s3://b/run")
    assert paths.absolute("gs://b/run/") == "gs://b/run"
    assert paths.absolute("run") == os.path.join(os.getcwd(), "run")
    assert workdir_lib.checkpoint_dir("gs://b/run") == "gs://b/run/checkpoints"


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_whole_writes_and_appends_keep_every_line(gcs_emulator, tmp_path, where):
    """An object cannot be appended to (gcsfs would overwrite it): appending rewrites it whole."""
    folder = str(tmp_path) if where == "local" else _url("appends")
    path = os.path.join(folder, "sub", "lines.txt")
    paths.write_whole(path, b"first\n")
    paths.append_text(path, "second\n")
    paths.append_text(path, "third\n")
    assert paths.as_path(path).read_text() == "first\nsecond\nthird\n"
    assert [p.name for p in paths.as_path(os.path.dirname(path)).iterdir()] == ["lines.txt"]


def test_a_folder_in_a_bucket_is_moved_object_by_object(gcs_emulator):
    """How a damaged step is set aside in a bucket (``<step>.damaged``): copies, then deletes."""
    source, target = _url("move/3"), _url("move/3.damaged")
    paths.write_whole(f"{source}/commit_success.txt", b"")
    paths.write_whole(f"{source}/default/d/abc", b"bytes of an array")
    paths.move_tree(source, target)
    assert sorted(str(p) for p in paths.files_under(_url("move"))) == [
        f"{target}/commit_success.txt", f"{target}/default/d/abc"]
    assert paths.as_path(f"{target}/default/d/abc").read_bytes() == b"bytes of an array"


def test_a_missing_bucket_is_one_clear_error_before_anything_runs(gcs_emulator, shapes_data_dir):
    config = tiny.tiny_shapes_config(shapes_data_dir)
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.validate(config, "gs://no-such-bucket/run")
    message = str(info.value)
    assert message.startswith("The workdir 'gs://no-such-bucket/run' cannot be written: writing a "
                              "test object into bucket 'no-such-bucket' failed"), message
    assert "\n" not in message and len(message) < 900, message
    config_checks.validate(config, _url("probed"))  # a bucket that exists: no error, nothing left
    assert not paths.as_path(_url("probed")).exists()


def test_a_missing_bucket_exits_2_from_the_command_line(gcs_emulator, shapes_data_dir):
    result = subprocess.run(
        [sys.executable, "-m", "train", "--config", "configs/clip_shapes_smoke.py",
         "--workdir", "gs://no-such-bucket/run", f"--config.data.data_dir={shapes_data_dir}"],
        cwd=ROOT, env=test_env.with_devices(1), capture_output=True, text=True, timeout=300)
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(ours) == 1 and "bucket 'no-such-bucket'" in ours[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_an_export_into_a_missing_bucket_exits_2_before_loading_the_run(gcs_emulator):
    result = subprocess.run(
        [sys.executable, "-m", "train.export", "--config", "configs/clip_shapes_hf.py",
         "--workdir", "/nonexistent/run", "--format", "hf", "--out", "gs://no-such-bucket/exports/hf"],
        cwd=ROOT, env=test_env.with_devices(1), capture_output=True, text=True, timeout=300)
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(ours) == 1 and ours[0].startswith(
        "error: The export folder 'gs://no-such-bucket/exports/hf' cannot be written: writing a "
        "test object into bucket 'no-such-bucket' failed"), result.stderr[-3000:]
    assert ours[0].endswith("or choose another --out.") and "Traceback" not in result.stderr


def test_other_url_kinds_are_refused():
    with pytest.raises(ValueError, match="a local path or a Cloud Storage bucket"):
        workdir_lib.check_writable("s3://bucket/run")


def test_the_bucket_lock_refuses_a_second_holder_and_names_the_first(gcs_emulator):
    workdir = _url("locked")
    with workdir_lock.hold(workdir):
        holder = json.loads(paths.as_path(f"{workdir}/{workdir_lock.LOCK}").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        workdir_lock.check_still_held(workdir)  # still ours: no error
        with pytest.raises(workdir_lock.WorkdirLocked) as info:
            bucket_lock.BucketLock(workdir, workdir_lock.LOCK).acquire()
        message = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert f"gcloud storage rm {workdir}/lock.json" in message
    assert not paths.as_path(f"{workdir}/{workdir_lock.LOCK}").exists()  # released


def test_a_bucket_workdir_deleted_under_the_run_is_found_gone(gcs_emulator):
    """Before each save the run reads its lock object: deleted with the workdir (``gcloud
    storage rm -r``), the run stops with ``WorkdirGone`` (exit 4), and so does a write error."""
    workdir = _url("deleted")
    with workdir_lock.hold(workdir):
        paths.write_whole(f"{workdir}/metrics.jsonl", b"{}\n")
        paths.as_path(workdir).rmtree()
        with pytest.raises(workdir_lock.WorkdirGone, match="it no longer exists"):
            workdir_lock.check_still_held(workdir)
        gone = loop._write_failure(FileNotFoundError(f"{workdir}/metrics.jsonl"), workdir)
        assert isinstance(gone, workdir_lock.WorkdirGone)


def test_a_write_the_bucket_refuses_mid_run_is_a_write_failure(gcs_emulator):
    """A 403 from the bucket mid-run (the run's credentials lost the right to write) ends as a
    write failure (exit 4), as a full disk does; the error is the one gcsfs raises for it (the
    emulator checks no permissions)."""
    from gcsfs import retry  # noqa: PLC0415 - only here

    workdir = _url("refused")
    with pytest.raises(OSError) as info:
        retry.validate_response(403, b'{"error": {"message": "no storage.objects.create access"}}',
                                "bucket/refused/metrics.jsonl")
    with workdir_lock.hold(workdir):
        failure = loop._write_failure(info.value, workdir)
        assert isinstance(failure, write_failures.WriteFailed)
        assert str(failure).startswith(f"Writing a file of the run failed: Permission denied "
                                       f"(EACCES), writing {workdir}. The run stopped. Permission "
                                       "was denied: make the workdir writable by this user."), failure
        assert loop._write_failure(ValueError("a bad value"), workdir) is None  # not a fault


def _write_lock(workdir: str, **holder) -> None:
    record = {"host": socket.gethostname(), "started": "2026-12-01T00:00:00+00:00", **holder}
    paths.write_whole(f"{workdir}/{workdir_lock.LOCK}", json.dumps(record).encode())


def test_a_bucket_lock_left_behind_on_another_host_is_refused(gcs_emulator):
    workdir = _url("remote")
    _write_lock(workdir, host="another-host", pid=1)
    with pytest.raises(workdir_lock.WorkdirLocked, match="pid 1 on host another-host"):
        with workdir_lock.hold(workdir):
            pass
    assert "another-host" in paths.as_path(f"{workdir}/{workdir_lock.LOCK}").read_text()  # kept


def test_a_bucket_lock_of_a_dead_process_on_this_host_is_taken_over(gcs_emulator, caplog):
    workdir = _url("dead")
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    _write_lock(workdir, pid=process.pid)
    with caplog.at_level(logging.WARNING), workdir_lock.hold(workdir):
        holder = json.loads(paths.as_path(f"{workdir}/{workdir_lock.LOCK}").read_text())
        assert holder["pid"] == os.getpid()
    assert f"pid {process.pid} on host" in caplog.text and "no longer running" in caplog.text


def test_the_record_metrics_and_run_files_round_trip_through_a_bucket(gcs_emulator, shapes_data_dir):
    workdir = _url("record")
    config = tiny.tiny_shapes_config(shapes_data_dir)
    run_record.write(config, workdir, ["train", "--workdir", workdir], 0)
    run_record.write(config, workdir, ["train", "--workdir", workdir], 3)
    assert run_record.load(workdir).total_steps == config.total_steps
    assert run_record.differences(config, run_record.load(workdir)) == []
    lines = paths.as_path(f"{workdir}/{workdir_lib.COMMANDS}").read_text().splitlines()
    assert [json.loads(line)["start_step"] for line in lines] == [0, 3]

    writer = metrics_writer.MetricsWriter(workdir, enabled=True)
    writer.scalars(2, {"train/loss": 1.5})
    writer.scalars(4, {"train/loss": 1.25})
    metrics = paths.as_path(f"{workdir}/{workdir_lib.METRICS}").read_text().splitlines()
    assert [json.loads(line) for line in metrics] == [{"step": 2, "train/loss": 1.5},
                                                       {"step": 4, "train/loss": 1.25}]
    events = list(paths.as_path(f"{workdir}/{workdir_lib.TENSORBOARD}").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents.")
    staged = paths.as_path(writer._staging.name) / events[0].name
    assert events[0].read_bytes() == staged.read_bytes()  # the whole file, as flushed

    data = b"a tokenizer's bytes"
    run_files.write(workdir, workdir_lib.TOKENIZER, data)
    assert run_files.read(workdir, workdir_lib.TOKENIZER, "") == data
    paths.write_whole(f"{workdir}/checkpoints/3/{workdir_lib.COMMIT_SUCCESS}", b"")
    paths.write_whole(f"{workdir}/{workdir_lib.TOKENIZER}", b"other bytes")
    with pytest.raises(run_files.RunFileError, match="differs from the one the checkpoints"):
        run_files.read(workdir, workdir_lib.TOKENIZER, "")


def test_a_bucket_step_counts_once_orbax_wrote_its_commit_mark(gcs_emulator, tmp_path):
    """In a bucket Orbax writes ``<step>/`` in place and ``commit_success.txt`` last; locally a
    numbered folder is finished (Orbax renamed it into place), with or without that file."""
    workdir = _url("commit")
    paths.write_whole(f"{workdir}/checkpoints/3/default/_METADATA", b"{}")
    paths.write_whole(f"{workdir}/checkpoints/6/default/_METADATA", b"{}")
    paths.write_whole(f"{workdir}/checkpoints/6.damaged/{workdir_lib.COMMIT_SUCCESS}", b"")
    assert workdir_lib.saved_steps(workdir) == []  # two saves cut short, one set aside
    paths.write_whole(f"{workdir}/checkpoints/3/{workdir_lib.COMMIT_SUCCESS}", b"")
    assert workdir_lib.saved_steps(workdir) == [3]
    assert workdir_lib.latest_step(workdir) == 3
    def step_folders():
        return sorted({str(p).split("/checkpoints/")[1].split("/")[0] for p in paths.files_under(workdir)})

    reader = checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir), read_only=True)
    assert reader.all_steps() == [3] and step_folders() == ["3", "6", "6.damaged"]
    reader.close()  # a reader leaves the cut-short save alone (it may be a save in flight) ...
    checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir)).close()
    # ... a writer's Orbax deletes it, in a thread its manager starts (awaited before the first
    # save, not on close), so under load the folder can outlive close by a moment.
    deadline = time.monotonic() + 60
    while step_folders() != ["3", "6.damaged"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert step_folders() == ["3", "6.damaged"]
    assert workdir_lib.saved_steps(workdir) == [3]
    local = tmp_path / "run" / "checkpoints" / "3" / "default"
    local.mkdir(parents=True)
    assert workdir_lib.saved_steps(str(tmp_path / "run")) == [3]  # unchanged locally


@pytest.mark.slow
def test_a_run_in_a_bucket_resumes_bitwise_and_evaluates(gcs_emulator, shapes_data_dir, tmp_path):
    """A tiny run trained into ``gs://bucket/run``, stopped at step 3 and resumed, ends with the
    parameters of the same run trained straight through on local disk; ``train.evaluate
    --workdir gs://bucket/run`` (no --config: the recorded one) reads it back, and
    ``train.predict embed`` writes its embeddings into the bucket."""
    config = tiny.tiny_shapes_config(shapes_data_dir)
    straight, workdir = str(tmp_path / "straight"), _url("run")
    trained = loop.train_and_evaluate(config, straight)
    stopped = loop.train_and_evaluate(config, workdir, stop_at_step=3)
    assert stopped["step"] == 3 and workdir_lib.saved_steps(workdir) == [3]
    loop.train_and_evaluate(config, workdir)
    step_a, params_a = runs.final_params(straight)
    step_b, params_b = runs.final_params(workdir)
    assert step_a == step_b == config.total_steps
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)

    names = {str(p).removeprefix(workdir + "/") for p in paths.files_under(workdir)}
    for name in ("config.json", "commands.jsonl", "run_files.json", "tokenizer.model",
                 "metrics.jsonl", "checkpoints/6/commit_success.txt"):
        assert name in names, sorted(names)
    assert workdir_lock.LOCK not in names  # released
    assert any(n.startswith("tensorboard/events.out.tfevents.") for n in names)
    assert any(n.startswith("pictures/contrastive_step6") for n in names)
    commands = paths.as_path(f"{workdir}/commands.jsonl").read_text().splitlines()
    assert [json.loads(line)["start_step"] for line in commands] == [0, 3]

    result = subprocess.run([sys.executable, "-m", "train.evaluate", "--workdir", workdir],
                            cwd=ROOT, env=test_env.with_devices(8), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads(result.stdout.strip().splitlines()[-1])
    assert evaluated["step"] == 6
    for key in ("zeroshot/test/top1", "retrieval/test/i2t_r1"):
        assert evaluated[key] == trained[key]  # the same parameters, the same numbers

    texts = tmp_path / "texts.txt"
    texts.write_text("a red circle\na blue square\n")
    out = _url("out/texts.npy")
    result = subprocess.run([sys.executable, "-m", "train.predict", "embed", "--workdir", workdir,
                             "--texts", str(texts), "--out", out], cwd=ROOT,
                            env=test_env.with_devices(1), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with paths.as_path(out).open("rb") as f:
        embedded = np.load(f)
    rows = json.loads(paths.as_path(_url("out/texts.rows.json")).read_text())["rows"]
    assert rows == ["a red circle", "a blue square"]
    np.testing.assert_allclose(embedded, inference.load(workdir).embed_texts(rows), atol=1e-6)


def test_a_data_dir_in_a_bucket_is_checked_and_described(gcs_emulator, shapes_data_dir):
    """``data.data_dir=gs://...``: TFDS reads the dataset's info and our checks stat its shards
    through ``etils.epath`` (here gcsfs), so a shard cut short in the bucket is found before a
    run. (Its records are then read by ``tf.data`` through TensorFlow's own GCS client, which
    cannot be pointed at the emulator: not reached here.)"""
    url = _url("tfds")
    paths.copy_local_tree(shapes_data_dir, url)
    config = tiny.tiny_shapes_config(url)
    datasets.check_config(config.data, prepared=True, batch_size=config.batch_size)
    builder = datasets.builder(config.data)
    assert os.fspath(builder.data_dir).startswith(f"{url}/captioned_shapes/tiny/")
    assert builder.info.splits["train"].num_examples == 512
    shard = next(p for p in paths.as_path(builder.data_dir).iterdir() if "-train.tfrecord-" in p.name)
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(tfrecord_shards.DamagedShard, match=shard.name):
        datasets.check_config(config.data, prepared=True, batch_size=config.batch_size)


@pytest.fixture(scope="module")
def bucket_clip_run(gcs_emulator, shapes_data_dir):
    """A tiny contrastive run that CLIPModel and open_clip can express, trained 2 steps into
    ``gs://bucket/clip-run`` (its CLIP BPE vocabulary in the bucket too)."""
    workdir = _url("clip-run")
    loop.train_and_evaluate(tiny.tiny_hf_clip_run_config(shapes_data_dir), workdir)
    assert workdir_lib.saved_steps(workdir) == [2]
    return workdir


def _bucket_files(url: str) -> dict[str, bytes]:
    return {str(p).removeprefix(url + "/"): p.read_bytes() for p in paths.files_under(url)}


def _local_files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_export_writes_into_a_bucket_what_it_writes_locally(bucket_clip_run, tmp_path):
    """``python -m train.export --workdir gs://... --out gs://...``: the same files, byte for
    byte, as an export of the same run into a local folder (written there, then copied in)."""
    run = inference.load(bucket_clip_run)
    out = _url("exports/hf")
    done = subprocess.run([sys.executable, "-m", "train.export", "--workdir", bucket_clip_run,
                           "--format", "hf", "--out", out], cwd=ROOT, env=test_env.with_devices(1),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith(f"export: contrastive run at step 2 -> {out}")
    export_cli.export(run, "hf", str(tmp_path / "hf"))
    local = _local_files(tmp_path / "hf")
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(local)
    assert _bucket_files(out) == local

    out = _url("exports/open_clip")
    files = export_cli.export(run, "open_clip", out)
    assert files == ["open_clip_config.json", "open_clip_model.safetensors"]
    export_cli.export(run, "open_clip", str(tmp_path / "open_clip"))
    assert _bucket_files(out) == _local_files(tmp_path / "open_clip")


def test_init_from_a_bucket_workdir_gets_its_checkpoint(gcs_emulator):
    """``init_from='workdir:gs://...'`` (both towers): a model starts with exactly the parameters
    saved in the bucket workdir's checkpoint, not its own fresh ones."""
    config = tiny.tiny_contrastive_config()
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    saved = contrastive.create_state(config, model, jax.random.key(7))
    workdir = _url("init-source")
    writer = checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir), async_save=False)
    writer.save(jax.device_put(saved, mesh_lib.replicated(mesh_lib.data_mesh())))
    writer.close()

    config.update(init_from=f"workdir:{workdir}", init_towers="all")
    init_from.check_spec(config.init_from)
    started = contrastive.create_state(config, model, jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(started.params),
                 jax.device_get(saved.params))
    fresh = contrastive.create_state(config, model, jax.random.key(0), pretrained=False)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(),
                                         jax.device_get(fresh.params), jax.device_get(saved.params)))
    assert max(moved) > 1e-4  # another init: the equality above means something
