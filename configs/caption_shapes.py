"""Captioning on the built-in captioned-shapes dataset, from the image tower of a clip_shapes run.

Run (from nothing: clip_shapes.prerequisite_config(), 600 steps, is trained first into
WORKDIR/clip; or reuse such a run with --config.prerequisites.clip.workdir=DIR):
  python -m train --config configs/caption_shapes.py --workdir workdirs/caption_shapes
Evaluate the latest checkpoint (one JSON line: caption/test/attr_acc_all, .../zeroshot_top1, ...):
  python -m train.evaluate --config configs/caption_shapes.py --workdir workdirs/caption_shapes
Another tower: --config.prerequisites.clip.workdir=DIR (or hf_clip:DIR with a matching
model.image); beam search: --config.decoding.method=beam; CapPa:
--config.parallel_prediction=0.75.

The clip_shapes ViT (width 128, depth 4, patch 8 on 32 px, MAP head), tuned with the decoder,
feeds its MAP vector and patch tokens to a 3-layer Transformer decoder (width 128) trained with
teacher-forced cross-entropy for 800 steps of batch 256, SentencePiece trained on the captions.
Greedy decoding with a KV cache; the generated captions are read back (shape, colour, size,
position words, synonyms included) and compared with the images; class prompts are scored by
their likelihood for generative zero-shot on single-object images (the contrastive model's
zero-shot set). Measured on a 2-core CPU (README, captioning): shape and colour right together
in 92.8% of test captions, generative zero-shot 99.6%, in about 11 minutes. With the tower
locked (--config.lock_image_tower=True; faster steps) the contrastive features bind colours to
the wrong shape in two-object images more often: 83.3%.
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.tasks import optim


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "captioning"
    config.seed = 0
    config.total_steps = 800
    config.batch_size = 256  # global, over all devices and processes
    config.log_every_steps = 50
    config.eval_every_steps = 800  # evaluation (zero-shot above all) costs ~a minute per split
    config.checkpoint_every_steps = 400
    config.keep_checkpoints = 2
    config.on_nonfinite = "skip"
    config.prerequisites = ml_collections.ConfigDict(dict(
        clip=dict(workdir="", config=clip_shapes.prerequisite_config())))
    config.init_from = "clip"  # the prerequisite's image tower ("" = from scratch)
    config.lock_image_tower = False  # True: train the decoder only (no backward pass through the ViT)
    config.parallel_prediction = 0.0  # share of examples trained by CapPa's parallel prediction

    config.data = ml_collections.ConfigDict(dict(
        name="captioned_shapes/32px",
        data_dir="",  # "" = the TFDS default (~/tensorflow_datasets)
        train_split="train", image_key="image", text_key="caption", label_key="label",
        image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), shuffle_buffer=20_000,
        flip=False,
        mixture=()))  # ((name, weight), ...): train on several prepared datasets (README)

    config.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece", path="", vocab_size=320, max_len=16))

    config.model = ml_collections.ConfigDict(dict(
        dtype="float32", pooled_token=True,
        image=dict(width=128, depth=4, mlp_dim=512, num_heads=4, patch_size=8, pool="map",
                   posemb="learn", act="gelu", ln_eps=1e-6, remat_policy=None),
        decoder=dict(width=128, depth=3, mlp_dim=512, num_heads=4, max_len=16, act="gelu",
                     ln_eps=1e-6)))

    config.optim = optim.default_config()
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 50

    # FSDP is one line: --config.parallel.fsdp=2 --config.parallel.rules="(('.*', 'fsdp'),)"
    config.parallel = ml_collections.ConfigDict(dict(driver="mesh", fsdp=1, rules=()))

    config.decoding = ml_collections.ConfigDict(dict(
        method="greedy",  # "greedy", "beam" or "sample"
        beam_size=4, length_penalty=0.0,  # beam search
        temperature=1.0, top_k=0,  # sampling (top_k 0 = the whole vocabulary)
        use_cache=True))  # False recomputes the whole prefix each step (the reference)

    config.evaluation = ml_collections.ConfigDict(dict(
        batch_size=256,
        splits=("test", "heldout"),  # generated captions: attribute accuracy, BLEU-4, CIDEr, loss
        attributes="builtin",  # read shapes / colours / size / position back from the captions
        zeroshot_splits=("test", "heldout"),
        zeroshot_filter=("num_objects", 1),  # as the contrastive zero-shot: one-object images
        class_names="builtin",  # the dataset's label names, "red circle", ...
        templates=("a {}.",),  # each scored by its likelihood; several are averaged
        fix_articles=True,  # "a orange ring." -> "an orange ring.", as the captions write it
        zeroshot_chunk=16))  # prompts scored at once against an image batch
    return config
