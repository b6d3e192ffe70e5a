"""Preemption notices: a SIGTERM asks the training loop to stop after the current step, on
every host at the same step, so that it saves a checkpoint and exits cleanly.

One process: our SIGTERM handler sets a flag that the loop reads after each step (free).
Several processes (``jax.distributed``): JAX's preemption sync manager already catches SIGTERM
on any host and, through the coordination service and without touching the devices, agrees
on one step at which every host stops; the loop asks it after each step. We leave its signal
handler in place. Only where that service is switched off (``jax_enable_preemption_service``)
do we fall back to our handler plus an all-gather of the per-host flags every
``sync_every_steps`` steps: each all-gather is a device round trip that stalls asynchronous
dispatch, so it cannot run every step.
"""

import logging
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


class PreemptionWatcher:
    """``with PreemptionWatcher() as watcher: ... if watcher.should_stop(step): save; break``."""

    def __init__(self, sync_every_steps: int = 10):
        self.requested = False  # this process saw the signal (our handler)
        self.sync_every_steps = sync_every_steps
        self._previous = None
        self._jax_service = jax.process_count() > 1 and _has_preemption_service()

    def __enter__(self) -> "PreemptionWatcher":
        if not self._jax_service and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        """Records the notice; a second SIGTERM gets the previous handling (by default: exit)."""
        del frame
        self.requested = True
        signal.signal(signum, self._previous if self._previous is not None else signal.SIG_DFL)
        log.warning("SIGTERM received: stopping after the current step with a checkpoint "
                    "(send it again to exit at once).")

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
