"""CLIP on the built-in captioned-shapes dataset: the README's main job, CPU minutes.

Run:
  python -m train --config configs/clip_shapes.py --workdir workdirs/clip_shapes
Evaluate the latest checkpoint:
  python -m train.evaluate --config configs/clip_shapes.py --workdir workdirs/clip_shapes

A ViT (width 128, depth 4, patch 8 on 32 px, MAP pooling) and a 3-layer causal text
Transformer (SentencePiece trained on the captions) trained for 400 steps of batch 256 with
the softmax contrastive loss: about 6 minutes on a 2-core CPU, dataset preparation included.
Measured (README table): zero-shot top-1 96% on the test split, 68% on held-out
(shape, colour) compositions never seen in training. ``--config.loss=sigmoid`` trains SigLIP
instead. ``prerequisite_config()`` is the longer run (600 steps) that captioning, fine-tuning
and the GAN start from.
"""

import ml_collections

from multimodal_jax.evaluation import explain
from multimodal_jax.tasks import optim


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "contrastive"
    config.loss = "softmax"
    config.seed = 0
    config.total_steps = 400
    config.batch_size = 256  # global, over all devices and processes
    config.log_every_steps = 50
    config.eval_every_steps = 200
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 3
    config.on_nonfinite = "skip"  # NaN/inf loss or update: "skip" it (counted) or "stop" (saved)
    config.init_from = ""  # weights to start from: "workdir:DIR", "hf_clip:DIR", ... (README)
    config.init_towers = "image"  # what init_from initialises: "image" (tower) or "all"
    config.lock_image_tower = False  # LiT: train the text side only
    config.accum_steps = 1  # micro-batches per step (negatives: each micro-batch's own)

    config.data = ml_collections.ConfigDict(dict(
        name="captioned_shapes/32px",
        data_dir="",  # "" = the TFDS default (~/tensorflow_datasets)
        train_split="train", image_key="image", text_key="caption", label_key="label",
        caption_templates=("a photo of a {}.",), image_size=32,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), shuffle_buffer=20_000, flip=False,
        mixture=()))  # ((name, weight), ...): train on several prepared datasets (README)

    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece", path="", vocab_size=320, max_len=16))

    config.model = ml_collections.ConfigDict(dict(
        embed_dim=128, dtype="float32",
        image=dict(width=128, depth=4, mlp_dim=512, num_heads=4, patch_size=8, pool="map",
                   posemb="learn", act="gelu", ln_eps=1e-6, remat_policy=None),
        text=dict(width=128, depth=3, mlp_dim=512, num_heads=4, max_len=16, causal=True,
                  pool="eos", act="gelu", ln_eps=1e-6, remat_policy=None)))

    config.optim = optim.default_config()
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 50

    # FSDP is one line: --config.parallel.fsdp=2 --config.parallel.rules="(('.*', 'fsdp'),)"
    config.parallel = ml_collections.ConfigDict(dict(driver="mesh", fsdp=1, rules=()))

    config.evaluation = ml_collections.ConfigDict(dict(
        batch_size=256,
        zeroshot_splits=("test", "heldout"),
        zeroshot_filter=("num_objects", 1),  # zero-shot classifies single-object images
        class_names="builtin",  # the dataset's label names, or "red circle,blue square,..."
        templates="builtin",  # the built-in prompts, or e.g. "a photo of a {}.,a {}."
        retrieval_split="test", retrieval_examples=1000,
        retrieval_same_text_matches=True))  # identical captions count as the same text
    # Relevance maps' pointing game on two-object images (evaluation/explain.py): off here,
    # --config.evaluation.explain.split=test turns it on (about 1 minute on 2 CPU cores).
    config.evaluation.explain = explain.default_config()
    return config


def prerequisite_config() -> ml_collections.ConfigDict:
    """The 600-step run that captioning, fine-tuning and the GAN read (their README figures were
    measured on it): ``--config.total_steps=600`` of the main job."""
    config = get_config()
    config.total_steps = 600
    return config
