"""Running a config: the one training loop (``loop.py``) and what surrounds it, checkpoints
with damage detection, the non-finite guard, preemption notices, the metrics writer,
prerequisite runs resolved to paths before the loop starts, the composed config checks,
multi-host initialisation, progress on stderr, the workdir's record of its config and commands,
and evaluating a workdir's newest checkpoint."""
