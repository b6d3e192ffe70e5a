"""Evaluates the newest checkpoint of a workdir:
``python -m train.evaluate --config configs/clip_shapes.py --workdir DIR``.

Prints one JSON object with every metric (and ``step``) as the last line of standard output.
Multi-host flags as for ``python -m train``.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import distributed
from train import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir holding checkpoints.")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = distributed.define_flags()


def main(argv):
    del argv
    cli.run_or_exit(lambda: distributed.initialize_from_flags(_DISTRIBUTED))
    cli.setup_process()
    metrics = cli.run_or_exit(lambda: evaluate_checkpoint.evaluate_latest(_CONFIG.value, _WORKDIR.value))
    cli.print_metrics(metrics)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
