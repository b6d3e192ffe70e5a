"""``python -m train --config CONFIG --workdir DIR``: ``mmjax-train`` from the repository root
(``multimodal_jax/cli/train.py``)."""

from multimodal_jax.cli import train

if __name__ == "__main__":
    train.run()
