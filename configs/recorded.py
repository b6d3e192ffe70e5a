"""The config a run recorded in its workdir (``WORKDIR/config.json``, written by training).

Commands that read a workdir use it when no ``--config`` is given, so
  python -m train.evaluate --workdir workdirs/clip_shapes
is ``python -m train.evaluate --config configs/recorded.py:workdirs/clip_shapes --workdir ...``,
and overrides apply to it (``--config.evaluation.batch_size=64``). Named explicitly it starts a
new run from an old run's config:
  python -m train --config configs/recorded.py:workdirs/clip_shapes --workdir workdirs/clip_800 \
      --config.total_steps=800
"""

import ml_collections

from multimodal_jax.runtime import run_record


def get_config(workdir: str = "") -> ml_collections.ConfigDict:
    if not workdir:
        raise ValueError("configs/recorded.py needs the workdir as its argument: "
                         "--config configs/recorded.py:WORKDIR")
    return run_record.load(workdir)
