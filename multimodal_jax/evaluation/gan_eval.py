"""Evaluates a conditional generator: one image per example of an evaluation split (from its
caption or class, with fixed noise), judged in the feature space of a contrastive encoder
that did not train the GAN, and by a classifier trained on real images.

Metrics (``gan/...``): ``fd_clip``, ``kid_clip`` (and ``kid_clip_std``), ``precision_clip`` /
``recall_clip`` (real vs generated image embeddings), ``clip_score`` (cosine of a generated
image and its caption), ``attr_acc_label`` and, on the built-in dataset, ``attr_acc_shape`` /
``attr_acc_color``, all at the truncation ``config.evaluation.psi`` (1 = none; ``metrics`` takes
any psi, for the trade-off benchmark). ``gan/real/...`` gives the same caption and attribute scores for the real
images (the ceiling), ``gan/untrained/...`` those of the untrained generator (the floor).
``gan/heldout/...``: the same metrics on ``config.evaluation.heldout_split`` (on the built-in
dataset the (shape, colour) pairs no training caption names), where it is set; ``gan/pairs/...``:
a per-object read-back of two-object captions of ``config.evaluation.pair_split`` (built-in
dataset, with a classifier).
A PNG grid of samples with their captions goes to ``picture_path``, its last row drawn from
held-out captions.
"""

import functools
from typing import Callable
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import shapes_render
from multimodal_jax.evaluation import attributes
from multimodal_jax.evaluation import base
from multimodal_jax.evaluation import encode
from multimodal_jax.evaluation import figures
from multimodal_jax.evaluation import generative
from multimodal_jax.evaluation import sample_grid
from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.pretrained import frozen_clip


class Evaluator(base.Evaluator):
    """Loads the judges once (encoder, classifier) and evaluates generator params.

    ``generate(g_params, frozen, z, raw, psi)`` draws images from noise and raw conditions
    (caption tokens of ``cond_tokenizer``, or class ids) in the ``data_norm`` normalisation,
    truncated by ``psi`` (a static float);
    ``frozen`` holds the params it reads besides G's (the conditioning model's);
    ``initial_params()`` gives the untrained params, for the floor."""

    def __init__(self, config: ml_collections.ConfigDict, generate: Callable, z_dim: int,
                 data_norm: tuple, frozen: dict, cond_tokenizer,
                 initial_params: Callable[[], dict]):
        self.config, self.generate, self.z_dim, self.data_norm = config, generate, z_dim, data_norm
        self.cond_tokenizer, self.text_conditioned = cond_tokenizer, cond_tokenizer is not None
        ev = config.evaluation
        self.encoder, encoder_params, self.tokenizer = frozen_clip.load_named(config, ev.encoder)
        self.host_params = jax.device_get({"enc": encoder_params, "frozen": frozen})  # numpy
        self.classifier = None
        if ev.get("classifier"):
            self.classifier, self.host_params["cls"] = attributes.load(config, ev.classifier)
        self.split_attributes = datasets.is_builtin(config.data.name)
        self.initial_params = initial_params
        self.psi = ev.get("psi", 1.0)  # configs recorded before truncation existed: none
        self._fake_columns = jax.jit(self._generated_columns, static_argnames="psi")
        self._real_columns = jax.jit(self._reference_columns)
        self._generate = jax.jit(self._images, static_argnames="psi")
        self._pair_reads = jax.jit(self._pair_columns, static_argnames="psi")
        self._real_pair_reads = jax.jit(self._real_pair_columns)
        self._placed, self._baseline, self._first = None, None, {}  # _first: split -> batch
        # What does not depend on G, by split, computed once (the judges are fixed for the
        # evaluator's life): the real images' and captions' columns, the real two-object
        # read-back, (side, label2) of the two-object scenes.
        self._real, self._real_pairs, self._scenes = {}, {}, {}
        self._inputs = {}  # (split, filter) -> its batches without images (_read)

    # --------------------------------------------------------------- jitted pieces

    def _images(self, bundle, z, cond_in, psi: float):
        return self.generate(bundle["g"], bundle["frozen"], z, cond_in, psi)

    def _judged(self, bundle, images):
        """Per image: its embedding, then (with a classifier) its predicted class."""
        columns = [self.encoder.encode_image(bundle["enc"], images, *self.data_norm)]
        if self.classifier is not None:
            columns.append(self.classifier.predict(bundle["cls"], images, *self.data_norm)[:, None]
                           .astype(jnp.float32))
        return columns

    def _generated_columns(self, bundle, z, cond_in, psi: float):
        """Per example: the generated image's embedding and predicted class."""
        return jnp.concatenate(self._judged(bundle, self._images(bundle, z, cond_in, psi)), axis=1)

    def _reference_columns(self, bundle, image, tokens):
        """Per example: the real image's embedding and predicted class, then the caption's
        embedding."""
        return jnp.concatenate(self._judged(bundle, image)
                               + [self.encoder.encode_text(bundle["enc"], tokens)], axis=1)

    # --------------------------------------------------------------- data

    def batches(self, split: str, where: Optional[tuple] = None):
        """Evaluation batches of ``split`` (filtered by ``where``, default
        ``config.evaluation.filter``) with fixed noise ``z`` and the generator's condition
        ``cond``: the examples and noise of every reading of this evaluation (benchmarks that
        read G's images beside it take theirs from here)."""
        ev, data = self.config.evaluation, self.config.data
        where = dict(filter=where or tuple(ev.get("filter") or ()) or None)
        batches = pipeline.make_eval_iterator(data, split, self.tokenizer, ev.batch_size, **where)
        conds = (pipeline.make_eval_iterator(data, split, self.cond_tokenizer, ev.batch_size, **where)
                 if self.text_conditioned else None)
        for i, batch in enumerate(batches):
            if ev.num_examples and i * ev.batch_size >= ev.num_examples:
                return
            rng = np.random.default_rng([ev.seed, jax.process_index(), i])
            labels = batch.get("label", np.zeros(len(batch["image"]), np.int32))  # none: COCO
            out = {"image": batch["image"], "tokens": batch["tokens"], "label": labels,
                   "mask": batch["mask"], "index": batch["index"],
                   "z": rng.standard_normal((len(batch["image"]), self.z_dim)).astype(np.float32),
                   "cond": next(conds)["tokens"] if conds is not None else labels}
            self._first.setdefault(split, out)
            yield out

    def _read(self, split: str, where: Optional[tuple] = None):
        """``batches(split, where)``, keeping each batch without its image (what the generated
        side reads: noise, conditions, labels, masks) for ``_generator_inputs``."""
        kept = []
        for batch in self.batches(split, where):
            kept.append({k: v for k, v in batch.items() if k != "image"})
            yield batch
        self._inputs[(split, where)] = kept

    def _generator_inputs(self, split: str, where: Optional[tuple] = None) -> list[dict]:
        """The image-less batches ``_read`` kept (reading the split now if it never ran), so
        that evaluations do not read and decode a split again."""
        if (split, where) not in self._inputs:
            for _ in self._read(split, where):
                pass
        return self._inputs[(split, where)]

    def _bundle(self, mesh: Mesh, g_params) -> dict:
        """The judges' params replicated on ``mesh`` (placed once), with ``g_params``."""
        if self._placed is None or self._placed[0] is not mesh:
            self._placed = (mesh, jax.device_put(self.host_params, mesh_lib.replicated(mesh)))
        return {"g": g_params, **self._placed[1]}

    # --------------------------------------------------------------- metrics

    def _metrics(self, bundle, mesh: Mesh, prefix: str, with_real: bool,
                 psi: float, split: Optional[str] = None) -> dict[str, float]:
        ev = self.config.evaluation
        split = split or ev.split
        if split not in self._real:
            self._real[split] = encode.map_dataset(self._real_columns, bundle, self._read(split),
                                                   mesh, ("image", "tokens"), ("label",))
        columns = functools.partial(self._fake_columns, psi=psi)
        out = encode.map_dataset(columns, bundle, self._generator_inputs(split), mesh,
                                 ("z", "cond"))["out"]
        real_out, labels = self._real[split]["out"], self._real[split]["label"]
        if ev.num_examples:
            out, real_out, labels = (a[:ev.num_examples] for a in (out, real_out, labels))
        dim = self.encoder.embed_dim
        real, fake, text = real_out[:, :dim], out[:, :dim], real_out[:, -dim:]
        kid, kid_std = generative.kid(real, fake, ev.kid_subsets, ev.kid_subset_size, ev.seed)
        precision, recall = generative.precision_recall(real, fake, ev.pr_k)
        metrics = {"fd_clip": generative.frechet_distance(real, fake), "kid_clip": kid,
                   "kid_clip_std": kid_std, "precision_clip": precision, "recall_clip": recall,
                   "clip_score": generative.clip_score(fake, text), "examples": float(len(out))}
        if with_real:
            metrics["real/clip_score"] = generative.clip_score(real, text)
        if self.classifier is not None:
            predicted = {"fake": out[:, dim].astype(np.int64),
                         "real": real_out[:, dim].astype(np.int64)}
            for name, value in attributes.attribute_accuracy(predicted["fake"], labels,
                                                             self.split_attributes).items():
                metrics[f"attr_acc_{name}"] = value
            if with_real:
                for name, value in attributes.attribute_accuracy(predicted["real"], labels,
                                                                 self.split_attributes).items():
                    metrics[f"real/attr_acc_{name}"] = value
        return {f"{prefix}/{k}": v for k, v in metrics.items()}

    def evaluate(self, params: dict, mesh: Mesh, picture_path: Optional[str] = None) -> dict[str, float]:
        """All ``gan/...`` metrics of ``params["g_ema"]``; the untrained baseline once per run."""
        metrics = self.metrics(params["g_ema"], mesh, self.psi, True, picture_path)
        if self.config.evaluation.untrained_baseline:
            if self._baseline is None:
                initial = jax.device_put(self.initial_params()["g_ema"], mesh_lib.replicated(mesh))
                self._baseline = self._metrics(self._bundle(mesh, initial), mesh, "gan/untrained",
                                               with_real=False, psi=self.psi)
            metrics.update(self._baseline)
        return metrics

    def metrics(self, g_params, mesh: Mesh, psi: float, with_real: bool = False,
                picture_path: Optional[str] = None) -> dict[str, float]:
        """The ``gan/...`` metrics of generator params ``g_params`` (placed on ``mesh``) sampled
        with truncation ``psi``; ``with_real``: the real images' scores too; a grid of samples
        at the same ``psi`` to ``picture_path``."""
        bundle = self._bundle(mesh, g_params)
        metrics = self._metrics(bundle, mesh, "gan", with_real, psi)
        heldout = self.config.evaluation.get("heldout_split")
        if heldout:
            metrics.update(self._metrics(bundle, mesh, "gan/heldout", with_real, psi, heldout))
        if self.config.evaluation.get("pair_split") and self.classifier and self.split_attributes:
            metrics.update(self._pair_metrics(bundle, mesh, psi))
        if picture_path and jax.process_index() == 0:
            self.write_grid(bundle, picture_path, psi)
        return metrics

    def _pair_columns(self, bundle, z, cond_in, side, psi: float):
        """Per two-object example: the classifier's reading of object 1's and object 2's half
        of the generated image."""
        return self._real_pair_columns(bundle, self._images(bundle, z, cond_in, psi), side)

    def _real_pair_columns(self, bundle, image, side):
        """The same reading of the images ``image`` (the real ones, for the ceiling)."""
        reads = [self.classifier.predict(bundle["cls"], crop, *self.data_norm)
                 for crop in object_crops(image, side)]
        return jnp.stack(reads, axis=1).astype(jnp.float32)

    def _pair_metrics(self, bundle, mesh: Mesh, psi: float) -> dict[str, float]:
        """``gan/pairs/...``: on two-object captions of ``config.evaluation.pair_split``, the
        share of generated images whose object 1 (``attr_acc_label_1``), object 2
        (``attr_acc_label_2``) or both (``attr_acc_both``) the classifier reads right in the
        half of the image the caption's relation puts it in; ``gan/pairs/real/...``: the
        same read-back of the real images (the measure's ceiling)."""
        split, where = self.config.evaluation.pair_split, ("num_objects", 2)
        sides, label2 = self._pair_scenes(split, where)

        def with_scenes(batches):
            for batch in batches:
                index = np.asarray(batch["index"])
                yield {**batch, "side": sides[index], "label2": label2[index]}

        if split not in self._real_pairs:
            self._real_pairs[split] = encode.map_dataset(
                self._real_pair_reads, bundle, with_scenes(self._read(split, where)), mesh,
                ("image", "side"), ("label", "label2"))
        columns = functools.partial(self._pair_reads, psi=psi)
        fake = encode.map_dataset(columns, bundle, with_scenes(self._generator_inputs(split, where)),
                                  mesh, ("z", "cond", "side"))["out"]
        real = self._real_pairs[split]
        reads = np.concatenate([fake, real["out"]], axis=1).astype(np.int64)
        want = (real["label"], real["label2"])
        metrics = {}
        for prefix, (first, second) in (("gan/pairs", reads[:, :2].T), ("gan/pairs/real", reads[:, 2:].T)):
            right = (first == want[0], second == want[1])
            metrics.update({f"{prefix}/attr_acc_label_1": float(np.mean(right[0])),
                            f"{prefix}/attr_acc_label_2": float(np.mean(right[1])),
                            f"{prefix}/attr_acc_both": float(np.mean(right[0] & right[1]))})
        metrics["gan/pairs/examples"] = float(len(reads))
        return metrics

    def _pair_scenes(self, split: str, where: tuple):
        """``(side, label2)`` per example of ``split``'s two-object scenes (read once): the half
        object 1 sits in (SIDE_OF_FIRST) and object 2's label."""
        if split not in self._scenes:
            scene = pipeline.read_features(self.config.data, split, ("relation", "label2"), where)
            # a ClassLabel feature of the built-in dataset: ids into shapes_render.RELATIONS
            sides = np.array([SIDE_OF_FIRST[shapes_render.RELATIONS[r]] for r in scene["relation"]],
                             np.int32)
            self._scenes[split] = (sides, np.asarray(scene["label2"]))
        return self._scenes[split]

    def write_grid(self, bundle, path: str, psi: Optional[float] = None) -> None:
        """The first ``grid_size`` evaluation examples' generated images, captioned, then a row
        of held-out captions (one per class first); sampled at ``psi`` (default:
        ``config.evaluation.psi``)."""
        ev = self.config.evaluation
        psi = self.psi if psi is None else psi
        rows = [_take(self._first[ev.split], range(min(ev.grid_size, int(self._first[ev.split]["mask"].sum()))))]
        if ev.get("heldout_split") and ev.heldout_split in self._first:
            rows.append(_take(self._first[ev.heldout_split],
                              _one_per_label(self._first[ev.heldout_split], ev.grid_columns)))
        picked = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
        images = encode.gather(self._generate(bundle, picked["z"], picked["cond"], psi=psi))
        captions = [self.tokenizer.decode(t) for t in picked["tokens"]]
        pixels = figures.to_uint8(images, *self.data_norm)
        sample_grid.write(pixels, captions, path, columns=ev.grid_columns)


# The half of the image object 1 of a two-object scene sits in, by the caption's relation
# (0 left, 1 right, 2 top, 3 bottom); object 2 sits in the opposite half (side ^ 1).
SIDE_OF_FIRST = {"left of": 0, "right of": 1, "above": 2, "below": 3}


def object_crops(images, side):
    """``(first, second)``: for each image ``[B, H, W, C]``, the half that holds object 1 (by
    ``side``, see SIDE_OF_FIRST) and the opposite half, each padded back to ``H x W`` by
    repeating its edge pixels (the background), so a classifier of whole images can read it."""
    h, w = images.shape[1:3]
    across, down = ((0, 0), (0, 0), (w // 4, w // 4), (0, 0)), ((0, 0), (h // 4, h // 4), (0, 0), (0, 0))
    halves = jnp.stack([jnp.pad(images[:, :, :w // 2], across, mode="edge"),
                        jnp.pad(images[:, :, w // 2:], across, mode="edge"),
                        jnp.pad(images[:, :h // 2], down, mode="edge"),
                        jnp.pad(images[:, h // 2:], down, mode="edge")])
    pick = lambda s: jnp.take_along_axis(halves, s[None, :, None, None, None], axis=0)[0]  # noqa: E731
    return pick(side), pick(side ^ 1)


def _take(batch: dict, indices) -> dict:
    """The rows ``indices`` of a batch's ``z``, ``cond`` and ``tokens``."""
    indices = np.asarray(list(indices), np.int64)
    return {k: np.asarray(batch[k])[indices] for k in ("z", "cond", "tokens")}


def _one_per_label(batch: dict, count: int) -> list[int]:
    """Up to ``count`` valid rows of ``batch``, each label's first row before any second one."""
    valid = np.flatnonzero(np.asarray(batch["mask"]) > 0)
    _, first = np.unique(np.asarray(batch["label"])[valid], return_index=True)
    firsts = sorted(int(i) for i in valid[first])
    return (firsts + [int(i) for i in valid if int(i) not in firsts])[:count]
