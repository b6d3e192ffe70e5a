"""``python -m train.export --workdir DIR --format hf|open_clip --out DIR``: ``mmjax-export`` from
the repository root (``multimodal_jax/cli/export.py``)."""

from multimodal_jax.cli import export

if __name__ == "__main__":
    export.run()
