"""Training progress on stderr, for people watching a run: tqdm's bar on a terminal; anywhere
else (``> log``, nohup, Slurm) one line per ``log_every_steps``, as a bar redraws nothing there:

    step 200/400: loss 1.2345, 3.10 steps/s, ETA 0:01:04

Steps/s is measured since the previous line (the first one includes compiling), the ETA is the
steps left at that rate. Only process 0 reports.
"""

import datetime
import logging
import sys
import time

import tqdm

log = logging.getLogger(__name__)


def line(step: int, total: int, loss: float, steps_per_s: float) -> str:
    """``step 200/400: loss 1.2345, 3.10 steps/s, ETA 0:01:04``."""
    left = (total - step) / steps_per_s if steps_per_s > 0 else float("inf")
    eta = str(datetime.timedelta(seconds=round(left))) if left != float("inf") else "unknown"
    return f"step {step}/{total}: loss {loss:.4f}, {steps_per_s:.2f} steps/s, ETA {eta}"


class Progress:
    """The bar or the lines of one training loop from step ``start`` to ``total``."""

    def __init__(self, total: int, start: int, reporting: bool, terminal: bool | None = None,
                 clock=time.time):
        """``terminal``: whether stderr is one (asked when None); ``clock``: seconds now."""
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.clock = clock
        self.total, self.lines = total, reporting and not terminal
        self.bar = tqdm.tqdm(total=total, initial=start, desc="train", unit="step",
                             disable=not (reporting and terminal))
        self.last_step, self.last_time = start, clock()

    def update(self) -> None:
        """One step done."""
        self.bar.update(1)

    def report(self, step: int, loss: float) -> None:
        """The loss at a logged step: on the bar, or as a line of its own."""
        self.bar.set_postfix(loss=f"{loss:.3f}")
        if self.lines:
            now = self.clock()
            rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
            log.info(line(step, self.total, loss, rate))
            self.last_step, self.last_time = step, now

    def close(self) -> None:
        self.bar.close()
