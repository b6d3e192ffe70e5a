"""A seconds-long smoke run of the contrastive path: a tiny model on the built-in dataset's
``tiny`` config. It checks that everything runs; its accuracy means nothing.

Run:
  python -m train --config configs/clip_shapes_smoke.py --workdir /tmp/smoke
  python -m train.evaluate --config configs/clip_shapes_smoke.py --workdir /tmp/smoke
"""

from multimodal_jax.configs import clip_shapes


def get_config():
    config = clip_shapes.get_config()
    config.total_steps, config.batch_size = 6, 16
    config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps = 2, 6, 3
    config.data.name = "captioned_shapes/tiny"
    config.data.shuffle_buffer = 256
    config.model.embed_dim = 16
    config.model.image.update(width=32, depth=1, mlp_dim=64, num_heads=2, patch_size=8)
    config.model.text.update(width=32, depth=1, mlp_dim=64, num_heads=2)
    config.optim.warmup_steps = 2
    config.evaluation.batch_size = 64
    config.evaluation.retrieval_examples = 64
    return config
