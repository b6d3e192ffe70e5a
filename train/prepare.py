"""``python -m train.prepare --name NAME --data_dir DIR --image_folder FOLDER``: ``mmjax-prepare``
from the repository root (``multimodal_jax/cli/prepare.py``)."""

from multimodal_jax.cli import prepare

if __name__ == "__main__":
    prepare.run()
