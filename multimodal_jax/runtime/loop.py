"""The one training loop: data -> step -> log / evaluate / checkpoint, resuming from the
newest checkpoint in the workdir.

``train_and_evaluate(config, workdir)`` works for every task in ``multimodal_jax.tasks`` and
returns the final metrics. The stream, the random keys and the step are all functions of
(config, seed, step), so a run stopped and resumed ends bitwise-equal to one that never
stopped.

Reliability, for every task alike: one training run per workdir (``workdir_lock.py``); a
SIGTERM or Ctrl-C stops the run after the current step with a complete checkpoint
(``preemption.py``); the task's step runs inside the non-finite guard (``guards.py``), which
drops or halts on NaN / inf as ``config.on_nonfinite`` says ("skip", the default, or "stop");
checkpoints survive ``kill -9`` and damaged ones are set aside (``checkpoint.py``); a write
that fails (a full disk) stops the run at once with ``write_failures.WriteFailed``, the
previous checkpoint kept; a damaged data shard met mid-run stops it with the last finished
step saved. The loop reads the guard only where it syncs anyway: when it logs and when it
saves.
"""

import json
import logging
import os
import time

import jax
import ml_collections

from multimodal_jax import paths
from multimodal_jax import tasks
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import device_input
from multimodal_jax.data import tfrecord_shards
from multimodal_jax.parallel import drivers
from multimodal_jax.parallel import flops
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.parallel import sharding
from multimodal_jax.runtime import checkpoint
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import guards
from multimodal_jax.runtime import metrics_writer
from multimodal_jax.runtime import preemption
from multimodal_jax.runtime import prerequisites
from multimodal_jax.runtime import progress as progress_lib
from multimodal_jax.runtime import run_record
from multimodal_jax.runtime import workdir_lock
from multimodal_jax.runtime import write_failures

log = logging.getLogger(__name__)
SKIPPED = "nonfinite_skipped"  # checkpoint metadata: how many updates the guard dropped so far


def _log_train(writer, step, metrics, guard, started, first_step, progress, meter=None):
    """Writes the train metrics with steps/s since the loop (re)started, and the step time,
    TFLOP/s per device and MFU since the last log (``flops.Throughput``)."""
    values = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
    values.update({f"train/{k}": v for k, v in (meter(step) if meter else {}).items()})
    values[f"train/{SKIPPED}"] = float(guard["skipped"])
    values["train/steps_per_s"] = (step - first_step) / max(time.time() - started, 1e-9)
    writer.scalars(step, values)
    progress.report(step, values["train/loss"])
    return values


def _checked_guard(driver, carry: guards.Carry, metrics, monitor, ckpt) -> dict:
    """The guard's values (a host sync); a run the guard halted saves its last good state
    and raises ``NonFiniteError`` here."""
    guard = jax.device_get(driver.get_state(carry.guard))
    error = monitor.check(guard, guards.checked_names(metrics), ckpt.directory)
    if error is not None:
        _save(ckpt, driver, carry, guard)
        ckpt.wait()
        raise error
    return guard


def _save(ckpt, driver, carry: guards.Carry, guard) -> None:
    """Starts an async save of the task state (the guard's count goes in its metadata), once
    the workdir is known to be still the run's (``workdir_lock.WorkdirGone`` if not)."""
    workdir_lock.check_still_held(os.path.dirname(ckpt.directory))
    ckpt.save(driver.get_state(carry.state), metadata={SKIPPED: int(guard["skipped"])})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None, command: list[str] | None = None) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints), its unfinished
    prerequisite runs first; returns the final metrics (evaluation and last train metrics).
    Every config is checked before anything trains, and a workdir's checkpoints are resumed only
    with a config that matches its record; each run holds its workdir's lock
    (``workdir_lock.WorkdirLocked`` when another run does). ``stop_at_step`` ends the run early
    with a checkpoint, as a preemption (SIGTERM) does; rerunning continues it. ``command`` (the
    command line, if any) is recorded in the workdir with the resolved config."""
    config_checks.validate(config, workdir)
    if workdir_lib.latest_step(workdir) is not None:
        run_record.check_matches(config, workdir)
    runs = prerequisites.pending(config, workdir)  # config.prerequisites still to train
    for run in runs:
        config_checks.validate(run.config, run.workdir)
    with workdir_lock.hold(workdir):
        for run in runs:
            log.info("Prerequisite %r: training its config into %s first.", run.name, run.workdir)
            with workdir_lock.hold(run.workdir):
                metrics = _train_resolved(run.config, run.workdir, command=command)
            if metrics.get("preempted"):  # stop here too: rerunning resumes the prerequisite
                return metrics
        return _train_resolved(config, workdir, stop_at_step, command)


def _train_resolved(config, workdir, stop_at_step=None, command=None) -> dict:
    """One run whose prerequisites exist: their references resolved to paths, recorded in the
    workdir (process 0), then trained under a preemption watcher."""
    config = prerequisites.resolve(config, workdir)
    with preemption.PreemptionWatcher() as watcher:
        try:
            paths.as_path(workdir).mkdir(parents=True, exist_ok=True)
            if jax.process_index() == 0:
                run_record.write(config, workdir, command, workdir_lib.latest_step(workdir) or 0,
                                 jax.process_count())
            return _train(config, workdir, stop_at_step, watcher)
        except Exception as error:
            failure = _write_failure(error, workdir)
            if failure is None or failure is error:
                raise
            raise failure from error


def _write_failure(error: Exception, workdir: str) -> Exception | None:
    """``error`` as a ``WriteFailed`` naming the newest complete checkpoint (pending saves
    have ended by now), or as ``WorkdirGone`` when the workdir was deleted or moved meanwhile
    (a save into it, or the restore of its checkpoints, then fails in many ways); None when it
    is neither."""
    if isinstance(error, workdir_lock.WorkdirGone):
        return error
    if isinstance(error, (OSError, write_failures.WriteFailed, checkpoint.CheckpointError)) \
            or type(error) is ValueError:  # (Orbax's errors of a save or restore whose folder went)
        gone = workdir_lock.gone_error(workdir)
        if gone is not None:
            return gone
    if isinstance(error, write_failures.WriteFailed):
        failure = error
    elif write_failures.is_write_failure(error):
        failure = write_failures.WriteFailed("a file of the run", workdir,
                                             write_failures.cause_of(error))
    elif (refused := write_failures.bucket_refusal(error, workdir)) is not None:  # (HTTP 403)
        failure = write_failures.WriteFailed("a file of the run", workdir, refused)
    else:
        return None
    return failure.keeping(workdir)


def _train(config, workdir, stop_at_step, watcher) -> dict:
    setup_started = time.time()
    task = tasks.get_task(config.task)(config, workdir)
    log.info("Data and tokenizer ready in %.1f s.", time.time() - setup_started)
    mesh = mesh_lib.mesh_from_config(config.parallel)  # "data" (and "fsdp") axes
    ckpt = checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir), config.keep_checkpoints)
    try:
        return _loop(config, workdir, stop_at_step, watcher, task, mesh, ckpt)
    finally:
        ckpt.close()  # waits for a pending async save


def _loop(config, workdir, stop_at_step, watcher, task, mesh, ckpt) -> dict:
    layout = mesh_lib.layout(config.parallel)  # FSDP sharding rules, if any
    try:
        state = checkpoint.restore_or_init(ckpt, task.create_state, jax.random.key(config.seed),
                                           mesh, layout)
    except sharding.RulesError as error:  # found once the state's shapes are known
        raise config_checks.ConfigError(" ".join(str(error).split())) from None
    start = int(jax.device_get(state.step))
    mode = config.get("on_nonfinite", "skip")
    skipped = ckpt.metadata(start).get(SKIPPED, 0) if start else 0
    monitor = guards.Monitor(mode, skipped)
    driver = drivers.make_driver(config.parallel.driver, guards.guarded(task.train_step(), mode),
                                 mesh, **layout)
    meter = flops.meter_for(task.flops_per_example(), config, jax.device_count(), start)
    carry = driver.put_state(guards.Carry(state, guards.init(skipped)))
    del state
    writer = metrics_writer.MetricsWriter(workdir)
    root_key = jax.random.key(config.seed)
    batches = device_input.prefetch(task.train_batches(start), driver.put_batch)
    progress = progress_lib.Progress(config.total_steps, start, reporting=jax.process_index() == 0)
    started, final, preempted = time.time(), {}, False
    for step in range(start + 1, config.total_steps + 1):
        try:
            carry, metrics = driver.step(carry, next(batches), root_key)
        except tfrecord_shards.DamagedShard as error:  # the state of step - 1 is complete
            _save_before_stopping(ckpt, driver, carry, error)
            raise
        ckpt.poll()  # a failed async save stops the run here
        progress.update()
        last = step == config.total_steps
        preempted = watcher.should_stop(step)
        stopping = preempted or step == stop_at_step
        saving = step % config.checkpoint_every_steps == 0 or last or stopping
        if step % config.log_every_steps == 0 or last or saving:
            guard = _checked_guard(driver, carry, metrics, monitor, ckpt)
        if step % config.log_every_steps == 0 or last:
            final.update(_log_train(writer, step, metrics, guard, started, start, progress, meter))
        if saving:
            _save(ckpt, driver, carry, guard)
        if stopping:
            break
        if step % config.eval_every_steps == 0 or last:
            try:
                final.update(_evaluate(task, driver.get_state(carry.state), mesh, writer, workdir,
                                       step, last))
            except tfrecord_shards.DamagedShard as error:
                _save_before_stopping(ckpt, driver, carry, error)
                raise
    progress.close()
    ckpt.wait()
    state = driver.get_state(carry.state)
    if preempted:
        step = int(jax.device_get(state.step))
        log.warning("%s: stopped at step %d with a complete checkpoint; rerun the same command "
                    "to resume.", watcher.reason(), step)
        final["preempted"] = True
        final["interrupted"] = watcher.interrupted
    if start >= config.total_steps:  # nothing left to train: evaluate what is there
        final.update(_evaluate(task, state, mesh, writer, workdir, start, True))
    return {"step": int(jax.device_get(state.step)), **final}


def _save_before_stopping(ckpt, driver, carry: guards.Carry, error: tfrecord_shards.DamagedShard) -> None:
    """Saves the last finished step before a data error ends the run, and says so in it."""
    step = int(jax.device_get(driver.get_state(carry.state).step))
    if step == 0:
        return
    _save(ckpt, driver, carry, jax.device_get(driver.get_state(carry.guard)))
    ckpt.wait()
    error.saved_step = step


def _evaluate(task, state, mesh, writer, workdir, step, final: bool) -> dict:
    """Runs the task's evaluation, logs it, and at the end writes its picture."""
    wanted = final or task.pictures_every_eval  # e.g. a GAN's sample grid at every evaluation
    picture = workdir_lib.picture_path(workdir, f"{task.name}_step{step}") if wanted else None
    started = time.time()
    metrics = task.evaluate(state.params, mesh, picture)
    metrics["eval/seconds"] = time.time() - started
    writer.scalars(step, metrics)
    if picture and paths.as_path(picture).exists():
        writer.image(step, f"{task.name}/examples", picture)
    if jax.process_index() == 0:
        log.info("step %d: %s", step, json.dumps(metrics))
    return metrics
