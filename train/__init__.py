"""``python -m train`` and ``python -m train.evaluate`` from the repository root: the console
scripts ``mmjax-train`` and ``mmjax-evaluate`` (``multimodal_jax/cli/``) under the names the
README uses. Not installed: it would be a generic top-level name in site-packages."""
