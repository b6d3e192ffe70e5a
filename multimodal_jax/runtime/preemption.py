"""Preemption notices and Ctrl-C: a SIGTERM or a SIGINT asks the training loop to stop after
the current step, on every host at the same step, so that it saves a checkpoint, waits for it
and exits cleanly. A second signal of the same kind ends the process at once (the kernel's
default action, which needs no cooperation from a busy process); the last complete checkpoint
is kept, and a save in flight is ignored by the next run.

Ctrl-C (SIGINT) is told apart from a preemption (``interrupted``): the command exits 130 for
it, as shells expect of an interrupted program, and 0 for a preemption notice.

One process: our SIGTERM handler sets a flag that the loop reads after each step (free).
Several processes (``jax.distributed``): JAX's preemption sync manager already catches SIGTERM
on any host and, through the coordination service and without touching the devices, agrees
on one step at which every host stops; the loop asks it after each step. We leave its signal
handler in place, and turn a Ctrl-C into a SIGTERM to this process, which that service then
spreads. Only where that service is switched off (``jax_enable_preemption_service``)
do we fall back to our handler plus an all-gather of the per-host flags every
``sync_every_steps`` steps: each all-gather is a device round trip that stalls asynchronous
dispatch, so it cannot run every step.
"""

import logging
import os
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)
SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}


class PreemptionWatcher:
    """``with PreemptionWatcher() as watcher: ... if watcher.should_stop(step): save; break``."""

    def __init__(self, sync_every_steps: int = 10):
        self.requested = False  # this process saw a signal (our handlers)
        self.interrupted = False  # ... and it was Ctrl-C
        self.sync_every_steps = sync_every_steps
        self._previous: dict = {}
        self._jax_service = jax.process_count() > 1 and _has_preemption_service()

    def __enter__(self) -> "PreemptionWatcher":
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in SIGNALS:
            if signum == signal.SIGTERM and self._jax_service:
                continue  # JAX's own handler tells every host
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        """Records the request; the same signal again gets the default action: the process
        ends at once."""
        del frame
        self.requested = True
        self.interrupted = self.interrupted or signum == signal.SIGINT
        signal.signal(signum, signal.SIG_DFL)
        log.warning("%s received: stopping after the current step with a complete checkpoint (%s "
                    "again ends the run at once; the last complete checkpoint is kept).",
                    SIGNALS[signum], "Ctrl-C" if signum == signal.SIGINT else "SIGTERM")
        if self._jax_service and signum == signal.SIGINT:
            os.kill(os.getpid(), signal.SIGTERM)  # JAX's handler agrees on a step with all hosts

    def reason(self) -> str:
        """Why the run stopped, in words."""
        return "Interrupted (Ctrl-C)" if self.interrupted else "Preempted"

    def should_stop(self, step: int) -> bool:
        """Whether to stop after ``step``; the same answer on every host. Call it every step."""
        if self._jax_service:
            return multihost_utils.reached_preemption_sync_point(step)
        if jax.process_count() == 1:
            return self.requested
        if step % self.sync_every_steps:
            return False
        return bool(np.max(multihost_utils.process_allgather(np.int32(self.requested))))


def _has_preemption_service() -> bool:
    """Whether ``jax.distributed`` started JAX's preemption sync manager."""
    try:
        multihost_utils.reached_preemption_sync_point(0)
    except RuntimeError:
        return False
    return True
