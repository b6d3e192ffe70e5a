"""Trains a config: ``python -m train --config configs/clip_shapes.py --workdir DIR``.

Any field can be overridden with ``--config.FIELD=VALUE``. Resumes from the newest checkpoint
in the workdir. Bad configs get one clear message and exit code 2.

Multi-host: the same command on every host (TPU pod slices, Slurm and Open MPI are detected),
or add ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` on each.
"""


from absl import app
from absl import flags
from ml_collections import config_flags

from multimodal_jax.runtime import loop
from multimodal_jax.runtime import distributed
from train import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and pictures go.")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = distributed.define_flags()


def main(argv):
    del argv
    cli.run_or_exit(lambda: distributed.initialize_from_flags(_DISTRIBUTED))
    cli.setup_process()
    metrics = cli.run_or_exit(lambda: loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value))
    cli.print_metrics(metrics)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
