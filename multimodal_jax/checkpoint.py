"""Orbax checkpoints of the train state: periodic async saves, keep the last N, resume.

The data position needs no saving of its own: the input stream at step ``s`` is a pure
function of (seed, ``s``) (see ``data/pipeline.py``), so the saved step is the position.
Restoring walks back from the newest step: a damaged checkpoint (a truncated or missing
file) is reported and the previous one is used instead; Orbax only ever exposes finished
saves (it writes into a temporary folder and renames it when complete).
"""

import logging
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp
from flax import serialization


def _savable(state) -> dict[str, Any]:
    """Every pytree field of a flax struct state (step, params, optimiser states, EMA, ...) as
    a nested dict; static fields such as ``apply_fn`` and ``tx`` are not saved."""
    return serialization.to_state_dict(state)


class Checkpointer:
    """A ``CheckpointManager`` over ``directory`` holding train states."""

    def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, state, force: bool = False) -> bool:
        """Starts saving ``state`` (global arrays) at its step; returns whether it saves."""
        step = int(jax.device_get(state.step))
        if step in self.manager.all_steps():
            return False
        return self.manager.save(step, args=ocp.args.StandardSave(_savable(state)), force=force)

    def restore(self, template, step: Optional[int] = None):
        """``template`` (a state of global arrays) with values from ``step`` or the newest
        restorable checkpoint; None when the directory holds no checkpoint."""
        steps = [step] if step is not None else sorted(self.all_steps(), reverse=True)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _savable(template))
        for candidate in steps:
            try:
                values = self.manager.restore(candidate, args=ocp.args.StandardRestore(abstract))
            except Exception as error:  # noqa: BLE001 - any damage means: try an older one
                if step is not None:
                    raise
                logging.warning("Checkpoint at step %d in %s cannot be restored (%s: %s); "
                                "falling back to the previous one.", candidate, self.directory,
                                type(error).__name__, str(error).splitlines()[0][:300])
                continue
            return serialization.from_state_dict(template, values)
        if steps:
            raise RuntimeError(f"None of the checkpoints {steps} in {self.directory} can be restored; "
                               "move the directory away to start over.")
        return None

    def wait(self) -> None:
        """Blocks until a pending async save is complete."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
