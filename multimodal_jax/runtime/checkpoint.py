"""Orbax checkpoints of the train state: periodic async saves, keep the last N, resume.

The data position needs no saving of its own: the input stream at step ``s`` is a pure
function of (seed, ``s``) (see ``data/pipeline.py``), so the saved step is the position.

Crash safety: Orbax writes each save into a ``<step>.orbax-checkpoint-tmp-*`` folder and
renames it when complete, so a process killed mid-save (``kill -9``) leaves only a temporary
folder, which listings ignore and the next run deletes (``cleanup_tmp_directories``). In a
bucket (``gs://``, no atomic rename) Orbax writes ``<step>/`` in place and ``commit_success.txt``
into it last: a step folder without that file is not finished (``workdir.is_finished_step``),
is never restored, and the next training run's Orbax deletes it (``cleanup_tmp_directories``),
as it deletes a temporary folder locally.
Damage: each save records a fingerprint of its values (a wrapping integer sum of every
leaf's bits, the same on any device layout) in the step's metadata. Restoring walks back from
the newest step; one that cannot be read (a truncated or deleted file) or whose values do not
match their fingerprint is reported, renamed ``<step>.damaged`` (so it is neither retried nor
in the way of a new save at that step) and the previous one is used. A reader
(``read_only=True``: evaluation, another run reading this one) renames and removes nothing.

Failed saves: an async save that fails (no space, a quota, a file-size limit, an I/O error)
is noticed at the first step after it ended (``poll``, one process) or at the next save or wait
(several), and raises ``write_failures.WriteFailed``; Orbax deletes old steps only after a
save completed, so the previous checkpoint is kept.
"""

import logging
import os
import time
from typing import Any
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization
from jax.experimental import multihost_utils

from multimodal_jax import paths
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.runtime import write_failures

log = logging.getLogger(__name__)
FINGERPRINT = "fingerprint"


class CheckpointError(RuntimeError):
    """The workdir holds checkpoints but none of them can be restored."""


def _savable(state) -> dict[str, Any]:
    """Every pytree field of a flax struct state (step, params, optimiser states, EMA, ...) as
    a nested dict; static fields such as ``apply_fn`` and ``tx`` are not saved."""
    return serialization.to_state_dict(state)


def _leaf_sum(x) -> jax.Array:
    """The sum, wrapping modulo 2**32, of a leaf's values read as unsigned integers: exact, so
    independent of how the leaf is sharded or in which order the devices add it up."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_ or x.dtype.itemsize == 1:
        words = x.astype(jnp.uint32)
    else:
        words = jax.lax.bitcast_convert_type(x, {2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize])
    return jnp.sum(words.astype(jnp.uint32), dtype=jnp.uint32)


@jax.jit
def _leaf_sums(tree) -> list[jax.Array]:
    return [_leaf_sum(x) for x in jax.tree.leaves(tree)]


def fingerprint(tree) -> list[int]:
    """One integer per leaf of ``tree`` (arrays): equal trees give equal lists."""
    return [int(s) for s in jax.device_get(_leaf_sums(tree))]


def _agreed_fingerprint(values, step: int) -> list[int]:
    """``fingerprint(values)``; on several processes, an error is logged when their copies of
    replicated arrays differ (the processes diverged: such a save is a mix of both and will
    not restore)."""
    prints = fingerprint(values)
    if jax.process_count() > 1:
        every = multihost_utils.process_allgather(np.asarray(prints, np.uint32))
        names = list(_shapes(values))
        differ = [names[i] for i in np.flatnonzero((every != every[:1]).any(axis=0))]
        if differ:
            log.error("Step %d: the processes hold different values of %d arrays (e.g. %s): "
                      "their copies diverged, and this checkpoint will not restore.",
                      step, len(differ), differ[0])
    return prints


def _all_agree(ok: bool) -> bool:
    """``ok`` on every process (each one reads the checkpoint; they must decide alike)."""
    if jax.process_count() == 1:
        return ok
    return bool(np.min(multihost_utils.process_allgather(np.int32(ok))))


class Checkpointer:
    """A ``CheckpointManager`` over ``directory`` holding train states; ``read_only`` for a
    process that only restores (it creates, renames and removes nothing)."""

    def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        self.directory = paths.absolute(directory)
        self.read_only = read_only
        self._pending: Optional[int] = None  # the step of a save that may still be running
        self.failure: Optional[write_failures.WriteFailed] = None  # a save that failed
        # A reader: nothing created, no temporary folder removed (it may be a writer's save in
        # flight), nothing deleted. (Orbax's own read_only option logs a warning on every use.)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep, create=not read_only,
            enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_handlers=ocp.StandardCheckpointHandler())

    def all_steps(self) -> list[int]:
        """The finished steps (in a bucket: those whose save wrote its commit mark)."""
        steps = self.manager.all_steps()
        if paths.is_gcs(self.directory):
            steps = [step for step in steps if self._finished(step)]
        return sorted(steps)

    def _finished(self, step: int) -> bool:
        """Whether the folder of ``step`` holds a complete save."""
        step_dir = os.path.join(self.directory, str(step))
        return paths.as_path(step_dir).is_dir() and workdir_lib.is_finished_step(step_dir)

    def save(self, state, force: bool = False, metadata: Optional[dict] = None) -> bool:
        """Starts saving ``state`` (global arrays) at its step, with ``metadata`` (JSON values)
        and the values' fingerprint; returns whether it saves. ``WriteFailed`` when the
        previous save failed, or this one cannot start for a write error."""
        if self.read_only:
            raise ValueError(f"{self.directory} was opened to read: it saves nothing.")
        self.wait()
        step = int(jax.device_get(state.step))
        if step in self.manager.all_steps():
            return False
        values = _savable(state)
        custom = {**(metadata or {}), FINGERPRINT: _agreed_fingerprint(values, step)}
        try:
            saving = self.manager.save(step, args=ocp.args.StandardSave(values), force=force,
                                       custom_metadata=custom)
        except Exception as error:
            if write_failures.cause_of(error).errno is None:
                raise
            raise self._failed(step, error) from error
        self._pending = step if saving else None
        return saving

    def _failed(self, step: Optional[int], error: Optional[BaseException]) -> write_failures.WriteFailed:
        """The ``WriteFailed`` of the save of ``step``; later errors of the same save (Orbax
        raises it again from several places) are not reported again."""
        cause = (write_failures.cause_of(error) if error is not None else write_failures.Cause(
            None, None, "the save ended without writing its step folder"))
        what = f"the checkpoint of step {step}" if step is not None else "a checkpoint"
        self.failure = write_failures.WriteFailed(what, self.directory, cause)
        return self.failure

    def wait(self) -> None:
        """Blocks until a pending async save is complete; ``WriteFailed`` (on every process)
        when it failed."""
        pending, self._pending, error = self._pending, None, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - whatever stopped the save, it is not saved
            error = e
        if pending is None:  # (the same on every process)
            if error is not None:
                raise self._failed(None, error) from error
            return
        written = pending is not None and self._finished(pending)
        if not _all_agree(error is None and written):
            raise self._failed(pending, error) from error

    def poll(self) -> None:
        """``WriteFailed`` as soon as a pending async save has failed; call it every step (one
        process: it reads a flag; several processes learn of a failure at the next
        ``save`` or ``wait``, where they synchronise anyway)."""
        if self._pending is not None and jax.process_count() == 1 and \
                not self.manager.is_saving_in_progress():
            self.wait()

    def metadata(self, step: int) -> dict:
        """What ``save(..., metadata=...)`` recorded at ``step`` (and the fingerprint); empty
        when that record is missing or unreadable."""
        try:
            return dict(self.manager.metadata(step).custom_metadata or {})
        except Exception:  # noqa: BLE001 - a damaged record only loses these extras
            return {}

    def _restore_verified(self, step: int, abstract) -> dict:
        """The values saved at ``step``; raises if they cannot be read or do not match."""
        values = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        expected = self.metadata(step).get(FINGERPRINT)
        if expected is not None and fingerprint(values) != expected:
            raise ValueError("its values do not match the fingerprint recorded when it was saved "
                             "(a file changed since, or the processes that saved it held different "
                             "copies of its arrays)")
        return values

    def restore(self, template, step: Optional[int] = None):
        """``template`` (a state of global arrays) with values from ``step`` or the newest
        restorable checkpoint; None when the directory holds no checkpoint."""
        steps = [step] if step is not None else sorted(self.all_steps(), reverse=True)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _savable(template))
        for candidate in steps:
            values, error = None, None
            try:
                values = self._restore_verified(candidate, abstract)
            except Exception as e:  # noqa: BLE001 - any damage means: try an older one
                error = e
            if _all_agree(error is None):
                return serialization.from_state_dict(template, values)
            self._raise_if_other_model(candidate, abstract)
            if step is not None:
                raise CheckpointError(f"The checkpoint at step {step} in {self.directory} cannot "
                                      f"be restored: {_first_line(error)}") from error
            if self.read_only:
                log.warning("The checkpoint at step %d in %s is damaged (%s); the previous one is "
                            "used (the next training run there sets it aside).", candidate,
                            self.directory, _first_line(error))
                continue
            log.warning("The checkpoint at step %d in %s is damaged (%s); it is renamed "
                        "%d.damaged and the previous one is used.", candidate, self.directory,
                        _first_line(error), candidate)
            self._set_aside(candidate)
        if steps:
            renamed = "" if self.read_only else " (they are now named <step>.damaged)"
            raise CheckpointError(
                f"None of the checkpoints {steps} in {self.directory} can be restored{renamed}. "
                "Move the workdir's checkpoints folder away to start over, or restore it from a "
                "backup.")
        return None

    def _raise_if_other_model(self, step: int, abstract) -> None:
        """A clear error (and nothing renamed) when ``step`` is readable but was saved from a
        state of other shapes: a changed config, not damage."""
        try:
            saved = _shapes(self.manager.item_metadata(step))
        except Exception:  # noqa: BLE001 - unreadable metadata: damage, handled by the caller
            return
        wanted = _shapes(abstract)
        differences = [f"{name} is {saved.get(name, 'absent')} there and {wanted.get(name, 'absent')} "
                       "here" for name in sorted(set(saved) | set(wanted),
                                                 key=lambda n: (not n.startswith("params"), n))
                       if saved.get(name) != wanted.get(name)]
        if differences:
            more = f" (and {len(differences) - 3} more differences)" if len(differences) > 3 else ""
            raise CheckpointError(
                f"The checkpoint at step {step} in {self.directory} holds another model or "
                f"optimiser than this config builds: {'; '.join(differences[:3])}{more}. Resume "
                "with the config that wrote it, or train in a new --workdir.")

    def _set_aside(self, step: int) -> None:
        """Renames a damaged step folder out of Orbax's sight (process 0; the others wait)."""
        source = os.path.join(self.directory, str(step))
        if jax.process_index() == 0 and paths.as_path(source).is_dir():
            target = source + ".damaged"
            if paths.as_path(target).exists():
                target = f"{target}.{time.strftime('%Y%m%d-%H%M%S')}"
            paths.move_tree(source, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint {step} set aside")
        self.manager.reload()

    def close(self) -> None:
        """Waits for a pending save (``WriteFailed`` if it failed) and closes the manager."""
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            except Exception:
                if self.failure is None:  # (else: the failure already reported, raised again)
                    raise


def restore_or_init(ckpt: Optional[Checkpointer], create_state, rng, mesh, layout: dict):
    """The newest restorable state of ``ckpt`` (None: no checkpoint to read), else
    ``create_state(rng)``; global arrays on ``mesh`` laid out as ``layout``
    (``mesh_lib.layout``) says, so a checkpoint of another device count reshards."""
    state = mesh_lib.init_state(create_state, rng, mesh, **layout)
    restored = ckpt.restore(state) if ckpt is not None else None
    if restored is None:
        return state
    log.info("Restored step %d from %s.", int(restored.step), ckpt.directory)
    return restored


def _shapes(tree) -> dict[str, str]:
    """``{"params/a/kernel": "float32[3, 4]"}`` for a tree of arrays or array metadata."""
    return {"/".join(str(getattr(k, "key", k)) for k in path):
            f"{leaf.dtype}[{', '.join(map(str, leaf.shape))}]"
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _first_line(error: Optional[BaseException]) -> str:
    if error is None:
        return "another process could not read it"
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
