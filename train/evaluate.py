"""``python -m train.evaluate --config CONFIG --workdir DIR``: ``mmjax-evaluate`` from the
repository root (``multimodal_jax/cli/evaluate.py``)."""

from multimodal_jax.cli import evaluate

if __name__ == "__main__":
    evaluate.run()
