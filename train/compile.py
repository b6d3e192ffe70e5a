"""``python -m train.compile --config CONFIG --topology v5e:4x4``: ``mmjax-compile`` from the
repository root (``multimodal_jax/cli/compile.py``)."""

from multimodal_jax.cli import compile as compile_cli

if __name__ == "__main__":
    compile_cli.run()
