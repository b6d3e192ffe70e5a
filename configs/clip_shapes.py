"""CLIP on the built-in captioned-shapes dataset: the README's main job, CPU minutes.

Run:
  python -m train --config configs/clip_shapes.py --workdir workdirs/clip_shapes
Evaluate the latest checkpoint:
  python -m train.evaluate --config configs/clip_shapes.py --workdir workdirs/clip_shapes

A ViT (width 128, depth 4, patch 4 on 32 px) and a 3-layer text Transformer trained with
the softmax contrastive loss. Reaches (2-core CPU, see the README table for the measured
figures): zero-shot top-1 >= 90% on the test split, held-out compositions and retrieval R@1
reported beside it. ``--config.loss=sigmoid`` trains SigLIP instead.
"""

import ml_collections

from multimodal_jax import optim


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "contrastive"
    config.loss = "softmax"
    config.seed = 0
    config.total_steps = 1200
    config.batch_size = 256  # global, over all devices and processes
    config.log_every_steps = 50
    config.eval_every_steps = 400
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 3
    config.init_from = ""  # a checkpoint to start from (see README: published weights)

    config.data = ml_collections.ConfigDict(dict(
        name="captioned_shapes/32px",
        data_dir="",  # "" = the TFDS default (~/tensorflow_datasets)
        train_split="train", image_key="image", text_key="caption", label_key="label",
        caption_templates=("a photo of a {}.",), image_size=32,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), shuffle_buffer=20_000, flip=False))

    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece", path="", vocab_size=320, max_len=24))

    config.model = ml_collections.ConfigDict(dict(
        embed_dim=128, dtype="float32",
        image=dict(width=128, depth=4, mlp_dim=512, num_heads=4, patch_size=4, pool="map",
                   posemb="learn", act="gelu", ln_eps=1e-6, remat_policy=None),
        text=dict(width=128, depth=3, mlp_dim=512, num_heads=4, max_len=24, causal=True,
                  pool="eos", act="gelu", ln_eps=1e-6, remat_policy=None)))

    config.optim = optim.default_config()
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 100

    config.parallel = ml_collections.ConfigDict(dict(driver="mesh"))

    config.evaluation = ml_collections.ConfigDict(dict(
        batch_size=256,
        zeroshot_splits=("test", "heldout"),
        zeroshot_filter=("num_objects", 1),  # zero-shot classifies single-object images
        class_names="builtin",  # the dataset's label names
        retrieval_split="test", retrieval_examples=1000,
        retrieval_same_text_matches=True))  # identical captions count as the same text
    return config
