"""Text-to-image GAN on the built-in captioned-shapes dataset (32 px), trainable on a CPU.

Run (from nothing: the runs it reads are trained first into sub-folders of the workdir):
  python -m train --config configs/gan_shapes.py --workdir workdirs/gan_shapes
Evaluate the latest checkpoint (one JSON line: gan/fd_clip, gan/kid_clip, gan/clip_score,
gan/attr_acc_color, gan/attr_acc_shape, ... and the untrained generator's gan/untrained/...):
  python -m train.evaluate --config configs/gan_shapes.py --workdir workdirs/gan_shapes

Prerequisites (``config.prerequisites``; give ``--config.prerequisites.NAME.workdir=DIR`` to use
an existing run instead of training one into ``WORKDIR/NAME``):
  clip          configs/clip_shapes.py at 600 steps: its frozen text tower embeds the captions G
                and D are conditioned on, its image tower gives G the CLIP-alignment loss.
  eval_encoder  a second CLIP (another seed, a smaller image tower, fewer steps) that never
                trains the GAN: the feature space of fd_clip / kid_clip / precision / recall
                and the CLIP score.
  classifier    configs/vit_shapes.py (fewer steps), on real images of the train split and the
                first half of the heldout split: it tells the shape and colour of each
                generated image (attribute accuracy), the never-captioned pairs included.

The GAN: G (mapping network, 3 residual up-blocks with caption-modulated group norm) and a
projection D with spectral norm, hinge loss, matching-aware term, CLIP alignment, R1 (on 1 in
``r1_interval`` real images at every step: lazy R1's cost without a lax.cond),
DiffAugment (translation), EMA of G; single-object images (the attribute classifier reads
object 1; ``--config.data.train_filter="()"`` trains on all).
CLIP alignment at weight 1, then 32 over the last 1000 steps (``align_weight_late``).
Measured on a 2-core CPU (2026-12-07): 33 min 5 s in all, the GAN 19 min 15 s; at step 7000
(batch 16) shape 90.9%, label 90.7%, colour 99.6%, fd_clip 0.0076, held-out label 63.8%, recall
0.64. Late weight 16: shape 89.0%, fd_clip 0.0064; weight 1 throughout: shape 81.2%, fd_clip
0.0059, held-out label 62.2%, recall 0.74 (seed 1: shape 84.1%); batch 32 for 3500 steps, shape
80.0%; batch 64 for 2000 steps, shape 77.5% (README, GAN section).

Sampling: ``--config.evaluation.psi=0.7`` evaluates (and draws the grid) with truncation toward
each caption's mean style; ``python -m benchmarks.gan_truncation --workdir W`` measures
precision, recall and attribute accuracy against psi. ``--config.gan.discriminator=projected``
swaps the pixel D for heads on the conditioning CLIP's frozen image tower (measured only on a
400-step short run: README). ``--config.gan.align_loss=contrastive`` makes G's CLIP term a
cross-entropy over the batch's captions instead of the cosine pull (measured at 500 steps:
README); ``cosine_to_real`` caps that pull at the real image's own agreement with its caption
(measured at 2000 steps: README). ``python -m benchmarks.gan_alignment_gap --workdir W`` reads
G's images with the conditioning CLIP beside the judge. G's widths and the learning rates were
chosen by a 500-step sweep (README); ``--config.optim.g.decay_from=0.75`` (and ``.d.``) holds
each rate for 75% of the run and then decays it linearly to 0 (measured at 2000 steps, where it
stops shape short: README).
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.configs import vit_shapes


def prerequisite_configs() -> ml_collections.ConfigDict:
    """The runs the GAN reads, each trained into WORKDIR/<name> unless its workdir is given."""
    clip = clip_shapes.prerequisite_config()
    eval_encoder = clip_shapes.get_config()  # another seed, a smaller image tower
    eval_encoder.seed = 1
    eval_encoder.total_steps = 300
    eval_encoder.eval_every_steps = eval_encoder.checkpoint_every_steps = 300
    eval_encoder.model.image.depth = 3
    classifier = vit_shapes.get_config()
    # The judge must know the 8 held-out (shape, colour) pairs the GAN never trains on: it also
    # trains on the first half of the heldout split, 6 times over so that each of those classes
    # has about as many images as a train class (once over, it read only 48% of held-out
    # real images right); the GAN's held-out metrics use the second half.
    classifier.data.train_split = "train" + "+heldout[:50%]" * 6
    classifier.total_steps = 400
    classifier.eval_every_steps = classifier.checkpoint_every_steps = 200
    return ml_collections.ConfigDict(dict(
        clip=dict(workdir="", config=clip),
        eval_encoder=dict(workdir="", config=eval_encoder),
        classifier=dict(workdir="", config=classifier)))


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "adversarial"
    config.seed = 0
    # Batch 16 steps in 0.13-0.16 s here (batch 32: 0.25 s, batch 64: 0.52 s): 7000 steps fit
    # the 20-minute budget (18.3-19.5 min with the evaluations); at 6000 (96k images) shape
    # read 82% against batch 32's 77.5% at 96k and 80% at its last step, 3500 (README, GAN
    # section)
    config.total_steps = 7000
    config.batch_size = 16  # global, over all devices and processes
    config.log_every_steps = 100
    config.eval_every_steps = 1000  # every 16k images
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 2

    config.prerequisites = prerequisite_configs()
    # What G and D are conditioned on: "text" (caption embeddings of ``encoder``, a prerequisite
    # name or "hf_clip:DIR") or "class" (config.data.label_key ids, num_classes of them).
    config.condition = ml_collections.ConfigDict(dict(kind="text", encoder="clip", num_classes=0))

    config.data = ml_collections.ConfigDict(dict(
        name="captioned_shapes/32px", data_dir="", train_split="train", image_key="image",
        text_key="caption", label_key="label", image_size=32, mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5), shuffle_buffer=20_000, flip=False, train_filter=("num_objects", 1),
        mixture=()))  # ((name, weight), ...): train on several prepared datasets (README)

    config.model = ml_collections.ConfigDict(dict(
        dtype="float32",
        # widths (256, 128, 64, 32) against (128, 64, 32, 16): shape 65% against 51% at step 500
        # for 1.5x the step time (README, GAN section)
        generator=dict(widths=(256, 128, 64, 32), style_dim=128, mapping_depth=2, cond_dim=128,
                       groups=8),
        discriminator=dict(widths=(16, 32, 64), spectral_norm=True),
        # The heads of gan.discriminator="projected": on the conditioning CLIP's frozen image
        # tower, one per encoder block in ``blocks`` (() = all), ``width`` features per token.
        projected=dict(blocks=(), width=64, spectral_norm=True)))

    config.gan = ml_collections.ConfigDict(dict(
        loss="hinge",  # or "non_saturating"
        # "pixel": D = model.discriminator on the pixels; "projected": light heads on the frozen
        # conditioning CLIP's image-tower tokens (model.projected), G's gradient through it.
        discriminator="pixel",
        z_dim=64,
        matching_weight=1.0,  # real image + another example's caption counts as fake
        align_weight=1.0,  # G: CLIP(image) vs CLIP(caption), weight of align_loss; 0 = off
        # the weight over the last align_late_steps steps (0: align_weight throughout): continuing
        # the weight-1 run from step 6000 at 0 / 1 / 2 / 4 / 8 / 16 / 24 / 32 / 64 read shape 73 /
        # 81 / 84 / 87 / 89 / 89 / 90.2 / 90.9 / 91.2% at 7000, fd_clip 0.0064 at 16, 0.0076 at
        # 32, 0.0126 at 64; a ramp 1 -> 16 over the whole run read 81%, a strong pull from the
        # start draws blobs (README, GAN section)
        align_weight_late=32.0, align_late_steps=1000,
        # "cosine": their cosine distance; "contrastive": CLIP's cross-entropy over the batch's
        # captions (each image nearer its own caption than the others'); "cosine_to_real": the
        # cosine pull capped at the real image's own cosine with that caption (README).
        align_loss="cosine",
        r1_gamma=0.1, r1_interval=16,  # R1 on batch // 16 real images at every step
        # DiffAugment: translation only here (35k images are plenty; colour jitter blurs the
        # colour words, cutout can hide the object); ("color", "translation", "cutout") for
        # small datasets, () = off.
        augment=("translation",),
        ema_half_life_images=10_000.0, ema_rampup=0.05))

    # 8e-4 against 2e-4: shape 64% against 51% at step 500 (README); a faster D alone hurts
    # decay_from < 1: constant for that fraction of the run, then linear to lr * end_lr_ratio
    adam = dict(lr=8e-4, b1=0.0, b2=0.99, eps=1e-8, grad_clip_norm=0.0, decay_from=1.0,
                end_lr_ratio=0.0)
    config.optim = ml_collections.ConfigDict(dict(g=dict(adam), d=dict(adam)))

    # FSDP is one line: --config.parallel.fsdp=2 --config.parallel.rules="(('.*', 'fsdp'),)"
    config.parallel = ml_collections.ConfigDict(dict(driver="mesh", fsdp=1, rules=()))

    config.evaluation = ml_collections.ConfigDict(dict(
        encoder="eval_encoder",  # a prerequisite name or "hf_clip:DIR"; never the GAN's own
        classifier="classifier",  # a classification prerequisite; "" = no attribute accuracy
        split="test", filter=("num_objects", 1), num_examples=0,  # 0 = the whole split
        # gan/heldout/...: captions of the 8 (shape, colour) pairs no training caption names,
        # the half of the heldout split the classifier prerequisite did not train on.
        heldout_split="heldout[50%:]",
        # gan/pairs/...: two-object captions of this split; the classifier reads each object
        # in the half of the image its caption puts it in ("" = off).
        pair_split="test",
        batch_size=256, seed=0, kid_subsets=50, kid_subset_size=500, pr_k=3,
        untrained_baseline=True, grid_size=24, grid_columns=8,
        psi=1.0))  # truncation of the evaluation's samples and grid, in [0, 1]; 1 = none
    return config
