"""The non-finite guard: a train step whose loss, metrics or new state hold a NaN or an
infinity does not update the state, and the step records it.

``guarded(step, mode)`` wraps any task's pure ``step(state, batch, rng)`` into
``step((state, guard), batch, rng)``; it runs inside the jitted step under both drivers.
The finiteness flag is all-reduced over the ``"data"`` axis, so every device takes the
same branch. ``guard`` is a small dict of int32 scalars that lives next to the state on the
devices (never in the checkpoint), so checking it costs no host sync until the loop reads it:

  ``mode="skip"``: the bad update is dropped (params and optimiser state stay as they were,
  the step counter still advances, so the data position and random keys stay aligned) and
  ``skipped`` counts it.
  ``mode="stop"``: the first bad step latches ``bad_step``; from then on nothing changes, not
  even the step counter, so the state the loop finds is the last good one, to checkpoint.

A gradient overflow shows up as a non-finite new state (or ``grad_norm``), so checking the
metrics and the new state covers the loss and the gradients without seeing the gradients.
"""

import logging
from typing import Any
from typing import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from multimodal_jax.parallel.mesh import AXIS

MODES = ("skip", "stop")
STATE = "state"  # the name reported when only the new state (params, optimiser) is non-finite


class Carry(NamedTuple):
    """What the guarded step carries from step to step: the task's state and the guard."""

    state: Any
    guard: dict[str, jax.Array]


def check_mode(mode) -> None:
    """``config.on_nonfinite`` is one of ``MODES``."""
    if mode not in MODES:
        raise ValueError(f"config.on_nonfinite={mode!r}; choose one of {MODES}: 'skip' drops a "
                         "non-finite update and counts it, 'stop' saves the last good state and "
                         "stops.")


def init(skipped: int = 0) -> dict[str, jax.Array]:
    """A guard with no bad step seen (``bad_step == 0``), ``skipped`` counted before (resume)."""
    return {"skipped": jnp.asarray(skipped, jnp.int32), "bad_step": jnp.zeros((), jnp.int32),
            "bad_what": jnp.zeros((), jnp.int32)}  # distinct buffers: the state is donated


def _all_finite(tree) -> jax.Array:
    """True when every inexact (float / complex) leaf of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def checked_names(metrics: dict) -> list[str]:
    """The names whose finiteness ``nonfinite_mask`` reports, bit ``i`` for name ``i``."""
    return sorted(metrics) + [STATE]


def nonfinite_mask(metrics: dict, new_state) -> jax.Array:
    """An int32 bit mask over ``checked_names(metrics)``: bit set = that value is not finite.
    Reduced with ``pmax`` over the ``"data"`` axis, so all devices agree."""
    values = [metrics[name] for name in sorted(metrics)] + [new_state]
    bits = [jnp.where(_all_finite(v), 0, 1 << i) for i, v in enumerate(values)]
    return jax.lax.pmax(jnp.sum(jnp.stack(bits)).astype(jnp.int32), AXIS)


def describe(mask: int, names: list[str]) -> str:
    """``"loss, grad_norm"``: the names whose bit is set in ``mask``."""
    return ", ".join(n for i, n in enumerate(names) if mask >> i & 1) or "nothing"


def _old_if(drop, old, new):
    """``old`` where ``drop``, else ``new``, leaf by leaf (one all-reduced scalar decides)."""
    return jax.tree.map(lambda o, n: jnp.where(drop, o, n), old, new)


def guarded(step: Callable, mode: str = "skip") -> Callable:
    """``step(state, batch, rng) -> (state, metrics)`` -> the guarded
    ``step(Carry(state, guard), batch, rng) -> (Carry(state, guard), metrics)`` (see the
    module doc). ``state`` needs a ``step`` field (a flax ``TrainState`` or any struct with
    one); ``mode`` is checked with the config (``check_mode``)."""

    def wrapped(carry: Carry, batch, rng) -> tuple[Carry, dict]:
        state, guard = carry
        new_state, metrics = step(state, batch, rng)
        mask = nonfinite_mask(metrics, new_state)
        bad = mask != 0
        if mode == "stop":  # latched: after the first bad step nothing moves
            halted = guard["bad_step"] != 0
            drop, record = bad | halted, bad & ~halted
        else:
            drop, record = bad, bad
        kept = _old_if(drop, state, new_state)
        if mode == "skip":
            kept = kept.replace(step=new_state.step)  # the data position and keys move on
        guard = {"skipped": guard["skipped"] + record.astype(jnp.int32),
                 "bad_step": jnp.where(record, new_state.step, guard["bad_step"]).astype(jnp.int32),
                 "bad_what": jnp.where(record, mask, guard["bad_what"]).astype(jnp.int32)}
        return Carry(kept, guard), metrics

    return wrapped


class NonFiniteError(RuntimeError):
    """A run with ``on_nonfinite="stop"`` met a non-finite value; its last good state is saved."""

    def __init__(self, message: str, step: int, what: str):
        super().__init__(message)
        self.step, self.what = step, what


class Monitor:
    """The host side of the guard: reads it at the loop's sync points, warns about newly
    skipped updates, and turns a halted run into a ``NonFiniteError``."""

    def __init__(self, mode: str, skipped: int = 0):
        self.mode, self.reported = mode, skipped

    def check(self, guard: dict, names: list[str], directory: str) -> "NonFiniteError | None":
        """``guard`` (host values); ``names`` from ``checked_names``; ``directory`` holds the
        checkpoints. Returns the error to raise once the last good state is saved, or None."""
        skipped, bad_step, mask = (int(guard[k]) for k in ("skipped", "bad_step", "bad_what"))
        what = describe(mask, names)
        if self.mode == "stop" and bad_step:
            return NonFiniteError(
                f"Step {bad_step} produced a non-finite {what} (config.on_nonfinite='stop'). The "
                f"last good state, step {bad_step - 1}, is checkpointed in {directory}; a rerun "
                "resumes there and meets the same batch again, so first lower config.optim.lr, "
                "set config.optim.grad_clip_norm, or set config.on_nonfinite='skip' to drop such "
                "updates.", bad_step, what)
        if skipped > self.reported:
            logging.getLogger(__name__).warning(
                "%d non-finite update(s) skipped so far (config.on_nonfinite='skip'); the latest "
                "at step %d: %s.", skipped, bad_step, what)
            self.reported = skipped
        return None
