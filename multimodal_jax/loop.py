"""The one training loop: data -> step -> log / evaluate / checkpoint, resuming from the
newest checkpoint in the workdir.

``train_and_evaluate(config, workdir)`` works for every task in ``multimodal_jax.tasks`` and
returns the final metrics. The stream, the random keys and the step are all functions of
(config, seed, step), so a run stopped and resumed ends bitwise-equal to one that never
stopped.
"""

import json
import logging
import os
import sys
import time

import jax
import ml_collections
import tqdm

from multimodal_jax import checkpoint
from multimodal_jax import config_checks
from multimodal_jax import metrics_writer
from multimodal_jax import parallel
from multimodal_jax import tasks
from multimodal_jax.data import device_input

log = logging.getLogger(__name__)


def _restore_or_init(task, ckpt: checkpoint.Checkpointer, mesh, seed: int):
    """The newest restorable state in the workdir, else a fresh one (global arrays)."""
    state = jax.device_put(task.create_state(jax.random.key(seed)), parallel.replicated(mesh))
    restored = ckpt.restore(state)
    if restored is not None:
        log.info("Resuming from step %d in %s.", int(restored.step), ckpt.directory)
        return restored
    return state


def _log_train(writer, step, metrics, started, first_step, bar):
    """Writes the train metrics with steps/s since the loop (re)started."""
    values = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
    values["train/steps_per_s"] = (step - first_step) / max(time.time() - started, 1e-9)
    writer.scalars(step, values)
    bar.set_postfix(loss=f"{values['train/loss']:.3f}")
    return values


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints); returns the final
    metrics (evaluation and last train metrics). ``stop_at_step`` ends the run early with a
    checkpoint, as a preemption would; rerunning continues it."""
    config_checks.validate(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    setup_started = time.time()
    task = tasks.get_task(config.task)(config, workdir)
    log.info("Data and tokenizer ready in %.1f s.", time.time() - setup_started)
    mesh = parallel.data_mesh()
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    state = _restore_or_init(task, ckpt, mesh, config.seed)
    start = int(jax.device_get(state.step))
    driver = parallel.make_driver(config.parallel.driver, task.train_step(), mesh)
    dstate = driver.put_state(state)
    del state
    writer = metrics_writer.MetricsWriter(workdir)
    root_key = jax.random.key(config.seed)
    batches = device_input.prefetch(task.train_batches(start), driver.put_batch)
    bar = tqdm.tqdm(total=config.total_steps, initial=start, desc="train", unit="step",
                    disable=not sys.stderr.isatty() or jax.process_index() != 0)
    started, final = time.time(), {}
    for step in range(start + 1, config.total_steps + 1):
        dstate, metrics = driver.step(dstate, next(batches), root_key)
        bar.update(1)
        last = step == config.total_steps
        stopping = step == stop_at_step
        if step % config.log_every_steps == 0 or last:
            final.update(_log_train(writer, step, metrics, started, start, bar))
        if step % config.checkpoint_every_steps == 0 or last or stopping:
            ckpt.save(driver.get_state(dstate))
        if stopping:
            break
        if step % config.eval_every_steps == 0 or last:
            final.update(_evaluate(task, driver.get_state(dstate), mesh, writer, workdir, step, last))
    bar.close()
    ckpt.wait()
    ckpt.close()
    if start >= config.total_steps:  # nothing left to train: evaluate what is there
        state = driver.get_state(dstate)
        final.update(_evaluate(task, state, mesh, writer, workdir, start, True))
    return {"step": int(jax.device_get(driver.get_state(dstate).step)), **final}


def _evaluate(task, state, mesh, writer, workdir, step, final: bool) -> dict:
    """Runs the task's evaluation, logs it, and at the end writes its picture."""
    picture = os.path.join(workdir, "pictures", f"{task.name}_step{step}.png") if final else None
    if picture:
        os.makedirs(os.path.dirname(picture), exist_ok=True)
    started = time.time()
    metrics = task.evaluate(state.params, mesh, picture)
    metrics["eval/seconds"] = time.time() - started
    writer.scalars(step, metrics)
    if picture and os.path.exists(picture):
        writer.image(step, f"{task.name}/examples", picture)
    if jax.process_index() == 0:
        log.info("step %d: %s", step, json.dumps(metrics))
    return metrics
