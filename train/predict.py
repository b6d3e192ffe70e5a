"""``python -m train.predict SUBCOMMAND --workdir DIR ...``: ``mmjax-predict`` from the repository
root (``multimodal_jax/cli/predict.py``)."""

from multimodal_jax.cli import predict

if __name__ == "__main__":
    predict.run()
