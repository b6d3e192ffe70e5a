"""What the GAN's CLIP alignment buys: the conditioning CLIP's reading of G's images against the
judge's, on a trained GAN workdir.

Run (figures in README.md, "Text-to-image GAN"):
  python -m benchmarks.gan_alignment_gap --workdir workdirs/gan_shapes

G is trained to bring the conditioning CLIP's embedding of its image near its caption's. If it
learns shapes, the judge (the run's attribute classifier, trained on real images only) reads
them; if it learns what that one frozen tower reads as the caption, the tower agrees and the
judge does not. For the evaluation split and the held-out split of the run's config, the EMA
G's images of each caption (fixed noise, psi = 1) and the real images are read three ways:
the judge's (shape, colour) accuracy (the run's evaluation's own figure: same examples, same
noise), the conditioning CLIP's (each image's nearest label,
a label's prototype being the mean embedding of the split's captions of it), and the
conditioning CLIP's cosine of each image with its own caption (mean, 10th and 90th
percentiles). On the built-in dataset, also the judge's shape accuracy on G's images of each
shape the captions name (where G fails). Prints tables and ends with one JSON line.
"""

from benchmarks import common

THREADS = common.set_threads()  # before jax / tf start their thread pools

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402


def read_split(task, g_params, split: str, num_examples: int) -> dict:
    """Per example of ``split``, as the run's evaluation reads it (``Evaluator.batches``: its
    filter, its fixed noise): label, the judge's class of G's image and of the real one, and
    the conditioning CLIP's embeddings of image, real image and caption."""
    import jax  # noqa: PLC0415

    from multimodal_jax.tasks import adversarial  # noqa: PLC0415

    setup, frozen, evaluator = task.setup, task.frozen, task.evaluator
    judge, judge_params = evaluator.classifier, evaluator.host_params["cls"]
    norm = setup.data_norm

    @jax.jit
    def columns(z, tokens, real):
        fake = adversarial.generate(setup, g_params, frozen, z, tokens)
        embed = lambda images: setup.clip.encode_image(frozen["clip"], images, *norm)  # noqa: E731
        return {"fake_class": judge.predict(judge_params, fake, *norm),
                "real_class": judge.predict(judge_params, real, *norm),
                "fake": embed(fake), "real": embed(real),
                "text": adversarial.encode_condition(setup, frozen, tokens)}

    out = []
    for batch in evaluator.batches(split):
        got = jax.device_get(columns(batch["z"], batch["cond"], batch["image"]))
        keep = batch["mask"].astype(bool)
        out.append({"label": batch["label"][keep], **{k: v[keep] for k, v in got.items()}})
        if num_examples and sum(len(o["label"]) for o in out) >= num_examples:
            break
    merged = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    return {k: v[:num_examples] if num_examples else v for k, v in merged.items()}


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def readings(cols: dict) -> dict[str, float]:
    """The judge's and the conditioning CLIP's label accuracy, and the cosine with the caption,
    for G's images and the real ones."""
    labels = np.unique(cols["label"])
    prototypes = unit(np.stack([cols["text"][cols["label"] == k].mean(0) for k in labels]))
    text = unit(cols["text"])
    out = {"examples": float(len(cols["label"]))}
    for side in ("fake", "real"):
        emb = unit(cols[side])
        clip_label = labels[np.argmax(emb @ prototypes.T, axis=1)]
        cos = np.sum(emb * text, axis=1)
        out.update({f"{side}/judge_label_acc": float(np.mean(cols[f"{side}_class"] == cols["label"])),
                    f"{side}/clip_label_acc": float(np.mean(clip_label == cols["label"])),
                    f"{side}/cos_mean": float(cos.mean()),
                    f"{side}/cos_p10": float(np.percentile(cos, 10)),
                    f"{side}/cos_p90": float(np.percentile(cos, 90))})
    return out


def per_shape(cols: dict) -> dict[str, float]:
    """The judge's shape accuracy on G's images, per shape the captions name (the built-in
    dataset's labels), and the number of such images."""
    from multimodal_jax.data import shapes_render  # noqa: PLC0415
    from multimodal_jax.evaluation import attributes  # noqa: PLC0415

    want = attributes.builtin_attributes(cols["label"])["shape"]
    got = attributes.builtin_attributes(cols["fake_class"])["shape"]
    out = {}
    for index, shape in enumerate(shapes_render.SHAPES):
        asked = want == index
        if asked.any():
            out.update({f"fake/shape_acc/{shape}": float(np.mean(got[asked] == index)),
                        f"fake/shape_count/{shape}": float(asked.sum())})
    return out


def measure(workdir: str, num_examples: int = 0) -> dict[str, dict[str, float]]:
    """``{split: readings}`` for the evaluation split and the held-out split of ``workdir``'s
    recorded config, from its newest checkpoint (``num_examples`` > 0: the first examples of
    each split; 0: the run's own ``evaluation.num_examples``)."""
    import jax  # noqa: PLC0415

    from multimodal_jax import tasks  # noqa: PLC0415
    from multimodal_jax.pretrained import init_from  # noqa: PLC0415
    from multimodal_jax.runtime import prerequisites  # noqa: PLC0415
    from multimodal_jax.runtime import run_record  # noqa: PLC0415

    config = run_record.load(workdir)
    if config.task != "adversarial" or config.condition.kind != "text":
        raise ValueError(f"{workdir!r} is not a text-conditioned GAN run (config.task='adversarial', "
                         "config.condition.kind='text').")
    if not config.evaluation.get("classifier"):
        raise ValueError(f"{workdir!r} has no attribute classifier (config.evaluation.classifier).")
    config = prerequisites.resolve(config, workdir)
    num_examples = num_examples or config.evaluation.num_examples
    task = tasks.get_task(config.task)(config, workdir)
    g_params = jax.device_get(init_from.restore_params(workdir)["g_ema"])
    splits = [config.evaluation.split] + [s for s in [config.evaluation.get("heldout_split")] if s]
    results = {}
    for split in splits:
        cols = read_split(task, g_params, split, num_examples)
        # per shape where the evaluation splits its attributes: the built-in dataset's labels
        shapes = per_shape(cols) if task.evaluator.split_attributes else {}
        results[split] = {**readings(cols), **shapes}
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a trained text-to-image GAN's workdir")
    parser.add_argument("--num_examples", type=int, default=0,
                        help="read the first N examples of each split only (0: the run's own "
                             "setting)")
    args = parser.parse_args(argv)
    results = measure(args.workdir, args.num_examples)
    keys = ["judge_label_acc", "clip_label_acc", "cos_mean", "cos_p10", "cos_p90"]
    common.print_table(["split", "images"] + keys,
                       [[split, side] + [f"{r[f'{side}/{k}']:.3f}" for k in keys]
                        for split, r in results.items() for side in ("fake", "real")])
    shapes = list(dict.fromkeys(k.split("/")[-1] for r in results.values() for k in r
                                if "/shape_acc/" in k))
    if shapes:  # the built-in dataset: the judge's shape accuracy on G's images, per shape
        common.print_table(["split"] + shapes,
                           [[split] + [f"{r.get(f'fake/shape_acc/{s}', float('nan')):.3f}"
                                       for s in shapes] for split, r in results.items()])
    common.emit({"workdir": os.path.abspath(args.workdir), "threads": THREADS,
                 **{f"{split}/{k}": v for split, r in results.items() for k, v in r.items()}})


if __name__ == "__main__":
    main()
