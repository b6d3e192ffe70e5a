"""Why an image matches a text: relevance maps over the image's patches, and the pointing game.

``relevance_maps(model, params, images, text_emb)`` explains, for each image, its logit with the
text embedding beside it (``scale * <image, text> (+ bias)``), by five methods, each a
``[B, grid, grid]`` map over the patches:

  occlusion      how much the logit drops when the patch is painted over with the image's
                 median colour (Zeiler & Fergus 2014): one forward pass per patch
  grad_input     gradient x input on the patch tokens (the encoder's input): how much each
                 patch's token, as it is, pushes the logit up (Shrikumar et al. 2016)
  grad_rollout   attention weighted by its gradient, positive part, averaged over heads and
                 rolled out through the layers into the pooling (Chefer et al. 2021): where the
                 attention that raises the logit comes from
  map_attention  the MAP head's attention over the tokens (class token: its last-layer row),
                 averaged over heads: where the pooling looks, the same for every text
  rollout        attention rollout (Abnar & Zuidema 2020) into the pooling: the attention
                 alone, with the residual path, through every layer; the same for every text

The first three depend on the text; the last two only show where the image tower looks. The model
is run with ``layers.EXPLAIN`` attention (the same parameters), which records the encoder's input
tokens and every attention's weights and lets gradients reach them.

The pointing game (``evaluate``), on two-object images of the built-in dataset: each object is
named by its colour and shape ("a red star."), and the map of that prompt is a hit when its
peak patch holds part of that object (its renderer's mask: pixels at least half covered by it).
The patch grid halves the image exactly, so a patch never holds parts of both objects.

  explain/<split>/pointing_acc                 the best method's hit rate
  explain/<split>/<method>/pointing_acc        each method's
  explain/<split>/<method>/distractor_rate     its peak on the other object instead
  explain/<split>/chance                       a peak drawn uniformly over the patches
"""

from typing import Callable
from typing import Dict
from typing import Optional
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from multimodal_jax.data import datasets
from multimodal_jax.data import shapes_builder
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import SHAPES
from multimodal_jax.models import layers
from multimodal_jax.models.two_tower import TwoTower

METHODS = ("occlusion", "grad_input", "grad_rollout", "map_attention", "rollout")
TEXT_DEPENDENT = ("occlusion", "grad_input", "grad_rollout")
FIELDS = ("split", "examples", "template", "methods", "pictures", "batch_size")


def default_config() -> ml_collections.ConfigDict:
    """``config.evaluation.explain``: off while ``split`` is empty."""
    return ml_collections.ConfigDict(dict(
        split="",  # "test" (or "heldout") turns the pointing game on
        examples=2000,  # how many of the split's first examples are looked at (two-object ones used)
        template="a {}.",  # the prompt, with "colour shape" in place of {}
        methods=METHODS, pictures=8, batch_size=64))


# --- relevance maps -----------------------------------------------------------------------------

def instrumented(model: TwoTower) -> TwoTower:
    """``model`` whose image tower records its tokens and attention (same parameters)."""
    return model.clone(image_tower=model.image_tower.clone(attention_impl=layers.EXPLAIN))


def pair_logits(model: TwoTower, variables: dict, images, text_emb):
    """Each image's logit with its own text: ``scale * <image, text> (+ bias)``, ``[B]``."""
    image_emb = model.apply(variables, images, method=TwoTower.encode_image)
    params = variables["params"]
    logits = jnp.exp(params["logit_scale"]) * jnp.sum(image_emb * text_emb, axis=-1)
    return logits + params["logit_bias"] if "logit_bias" in params else logits


def recorded_values(model: TwoTower, params, images, text_emb):
    """(intermediates, their gradients) of the instrumented ``model``: the encoder's input tokens
    and every attention's weights, and the gradient of the logits' sum (images are independent)
    with respect to each."""
    _, state = model.apply({"params": params}, images, method=TwoTower.encode_image,
                           mutable=["perturbations", "intermediates"])

    def total(perturbations):
        return jnp.sum(pair_logits(model, {"params": params, "perturbations": perturbations},
                               images, text_emb))

    grads = jax.grad(total)(state["perturbations"])
    values = jax.tree.map(lambda t: t[0], state["intermediates"],
                          is_leaf=lambda t: isinstance(t, tuple))
    return values["image_tower"], grads["image_tower"]


def _blocks(encoder: dict) -> list:
    """The ``block_i`` entries of an encoder's tree, in depth order."""
    return [encoder[f"block_{i}"]["attn"]["attention"]
            for i in range(sum(1 for k in encoder if str(k).startswith("block_")))]


def rollout(attentions: Sequence, residual: bool = True):
    """Attention rollout: ``prod (0.5 * mean_h A + 0.5 * I)`` over layers, rows renormalised;
    ``[B, T, T]`` (row: output token, column: input token)."""
    eye = jnp.eye(attentions[0].shape[-1])
    out = jnp.broadcast_to(eye, attentions[0].shape[:1] + eye.shape)
    for weights in attentions:
        a = jnp.mean(weights, axis=1)
        if residual:
            a = 0.5 * a + 0.5 * eye
            a = a / jnp.sum(a, axis=-1, keepdims=True)
        out = a @ out
    return out


def gradient_rollout(attentions: Sequence, grads: Sequence):
    """Chefer et al.'s rule: ``R <- R + mean_h (grad * A)^+ @ R`` from ``R = I``; ``[B, T, T]``."""
    eye = jnp.eye(attentions[0].shape[-1])
    out = jnp.broadcast_to(eye, attentions[0].shape[:1] + eye.shape)
    for weights, grad in zip(attentions, grads):
        out = out + jnp.mean(jax.nn.relu(grad * weights), axis=1) @ out
    return out


def _pooling_row(tower, values, grads, weighted: bool):
    """``[B, T]``: how the pooled vector reads the last layer's tokens (the MAP head's attention,
    gradient-weighted or not; the class token's own row; uniform for average pooling)."""
    if tower.pool == "map":
        weights = values["map_head"]["attn"]["attention"][:, :, 0, :]
        if weighted:
            return jnp.mean(jax.nn.relu(grads["map_head"]["attn"]["attention"][:, :, 0, :] * weights), axis=1)
        return jnp.mean(weights, axis=1)
    tokens = values["encoder"]["tokens"]
    if tower.pool == "tok":
        return jax.nn.one_hot(jnp.zeros(tokens.shape[0], jnp.int32), tokens.shape[1])
    return jnp.full(tokens.shape[:2], 1.0 / tokens.shape[1])


def occlusion(model: TwoTower, params, images, text_emb, patch: int):
    """``[B, grid, grid]``: each image's logit minus its logit with one patch painted over by the
    image's median colour (per channel; on the built-in dataset, the background)."""
    batch, height, width, _ = images.shape
    grid_h, grid_w = height // patch, width // patch
    fill = jnp.median(images.reshape(batch, -1, images.shape[-1]), axis=1)[:, None, None, :]
    base = pair_logits(model, {"params": params}, images, text_emb)
    rows = jnp.arange(height)[:, None] // patch
    cols = jnp.arange(width)[None, :] // patch

    def drop(index):
        covered = ((rows == index // grid_w) & (cols == index % grid_w))[None, :, :, None]
        return base - pair_logits(model, {"params": params}, jnp.where(covered, fill, images), text_emb)

    drops = jax.lax.map(drop, jnp.arange(grid_h * grid_w))  # [patches, B], one pass at a time
    return drops.T.reshape(batch, grid_h, grid_w)


def relevance_maps(model: TwoTower, params, images, text_emb, methods: Sequence[str] = METHODS) -> dict:
    """``{method: [B, grid, grid]}`` explaining each image's logit with its row of ``text_emb``
    (unit ``[B, D]``); ``model`` as trained (it is instrumented here). Jit-able."""
    out = {}
    patch = model.image_tower.size()["patch_size"]
    if "occlusion" in methods:
        out["occlusion"] = occlusion(model, params, images, text_emb, patch)
    if not set(methods) - {"occlusion"}:
        return out
    model = instrumented(model)
    tower = model.image_tower
    values, grads = recorded_values(model, params, images, text_emb)
    encoder, encoder_grads = values["encoder"], grads["encoder"]
    tokens = encoder["tokens"]
    grid_h, grid_w = images.shape[1] // patch, images.shape[2] // patch
    extra = tokens.shape[1] - grid_h * grid_w  # a class token first

    def patches(row):
        return row[:, extra:].reshape(row.shape[0], grid_h, grid_w)

    if "grad_input" in methods:
        out["grad_input"] = patches(jnp.sum(tokens * encoder_grads["tokens"], axis=-1))
    attentions = _blocks(encoder)
    if "grad_rollout" in methods:
        flows = gradient_rollout(attentions, _blocks(encoder_grads))
        out["grad_rollout"] = patches(_read(_pooling_row(tower, values, grads, True), flows))
    if "map_attention" in methods:
        row = (_pooling_row(tower, values, grads, False) if tower.pool != "tok"
               else jnp.mean(attentions[-1][:, :, 0, :], axis=1))
        out["map_attention"] = patches(row)
    if "rollout" in methods:
        out["rollout"] = patches(_read(_pooling_row(tower, values, grads, False), rollout(attentions)))
    return out


def _read(row, flows):
    """The pooling row read through the rolled-out flows: ``[B, T]``."""
    return jnp.einsum("bt,bts->bs", row, flows)


# --- the pointing game --------------------------------------------------------------------------

def patch_masks(masks: np.ndarray, grid: int) -> np.ndarray:
    """bool ``[..., S, S]`` pixel masks -> ``[..., grid, grid]``: patches holding any of them."""
    size = masks.shape[-1]
    patch = size // grid
    shaped = masks.reshape(masks.shape[:-2] + (grid, patch, grid, patch))
    return shaped.any(axis=(-3, -1))


def peaks(maps: np.ndarray) -> np.ndarray:
    """Index ``(row, column)`` of each map's largest value (the first of ties): int ``[B, 2]``."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    return np.stack(np.unravel_index(np.argmax(flat, axis=1), maps.shape[1:]), axis=1)


def pointing(maps: np.ndarray, target: np.ndarray, other: np.ndarray) -> Dict[str, np.ndarray]:
    """Per map: ``hit`` (peak patch holds the target), ``distractor`` (the other object)."""
    grid = maps.shape[-1]
    at = peaks(maps)
    rows = np.arange(len(maps))
    pick = lambda m: patch_masks(m, grid)[rows, at[:, 0], at[:, 1]]  # noqa: E731
    return {"hit": pick(target), "distractor": pick(other)}


def two_object_trials(config: ml_collections.ConfigDict, split: str, examples: int) -> dict:
    """The two-object examples among the first ``examples`` of ``split``, each twice (once per
    object named): ``image`` uint8 ``[N, S, S, 3]``, ``target`` / ``other`` masks, ``name``
    ("red star"), ``index`` (the example's)."""
    variant = dataset_config(config.data)
    out = {"image": [], "target": [], "other": [], "name": [], "index": []}
    for index in range(min(examples, variant.num_examples(split))):
        example = shapes_builder.generate_example(variant, split, index, masks=True)
        if example["num_objects"] != 2:
            continue
        objects = [(example["shape"], example["color"]),
                   (SHAPES[example["shape2"]], COLORS[example["color2"]])]
        for k, (shape, color) in enumerate(objects):
            out["image"].append(example["image"])
            out["target"].append(example["masks"][k])
            out["other"].append(example["masks"][1 - k])
            out["name"].append(f"{color} {shape}")
            out["index"].append(index)
    return {k: np.asarray(v) for k, v in out.items()}


def dataset_config(data_cfg: ml_collections.ConfigDict):
    """The built-in dataset's ``ShapesConfig`` of ``data.name`` (the renderer knows its masks)."""
    name = datasets.field(data_cfg, "name") or ""
    if datasets.is_builtin(name):
        variant = name.split("/")[1].split(":")[0] if "/" in name else "32px"
        found = {c.name: c for c in shapes_builder.CaptionedShapes.BUILDER_CONFIGS}.get(variant)
        if found is not None:
            return found
    raise ValueError(f"config.evaluation.explain.split is set, but config.data.name={name!r} is "
                     "not the built-in captioned_shapes dataset, whose renderer gives the objects' "
                     "masks the pointing game needs; set config.evaluation.explain.split=''.")


def check_config(config: ml_collections.ConfigDict) -> None:
    """``config.evaluation.explain``: known fields; when on, a split and methods that exist, on
    the built-in dataset, at an image size the patches tile."""
    block = config.evaluation.get("explain")
    if not block:
        return
    unknown = sorted(set(block.keys()) - set(FIELDS))
    if unknown:
        raise ValueError(f"config.evaluation.explain has unknown field(s) {unknown}; its fields "
                         f"are {list(FIELDS)}.")
    if not block.get("split"):
        return
    if block.split not in shapes_builder.SPLITS:
        raise ValueError(f"config.evaluation.explain.split={block.split!r}; choose one of "
                         f"{shapes_builder.SPLITS}, or '' (off).")
    bad = [m for m in block.get("methods", METHODS) if m not in METHODS]
    if bad or not block.get("methods", METHODS):
        raise ValueError(f"config.evaluation.explain.methods has {bad or 'none'}; choose among "
                         f"{METHODS}.")
    if "{}" not in block.get("template", "{}"):
        raise ValueError(f"config.evaluation.explain.template={block.template!r} needs a {{}} for "
                         "the object's name, e.g. 'a {}.'.")
    for field in ("examples", "batch_size"):
        value = block.get(field, 1)
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"config.evaluation.explain.{field} must be a positive integer, got "
                             f"{value!r}.")
    dataset_config(config.data)


def evaluate(config: ml_collections.ConfigDict, model: TwoTower, params,
             preprocess: Callable[[list], np.ndarray], encode_texts: Callable[[list], np.ndarray],
             picture_path: Optional[str] = None) -> dict[str, float]:
    """The pointing game of ``config.evaluation.explain`` for host ``params``: metrics (module
    docstring), and a picture of the first trials' maps at ``picture_path``."""
    block = config.evaluation.explain
    split, methods = block.split, tuple(block.get("methods", METHODS))
    trials = two_object_trials(config, split, block.get("examples", 2000))
    if not len(trials["name"]):
        raise ValueError(f"The first {block.examples} examples of {split!r} hold no two-object "
                         "image; raise config.evaluation.explain.examples.")
    prompts = [block.get("template", "a {}.").format(n) for n in trials["name"]]
    text_emb = encode_texts(prompts)
    fn = jax.jit(lambda p, x, t: relevance_maps(model, p, x, t, methods))
    maps = batched(fn, params, preprocess(list(trials["image"])), text_emb,
                    block.get("batch_size", 64))
    grid = next(iter(maps.values())).shape[-1]
    metrics = {f"explain/{split}/chance": float(np.mean(patch_masks(trials["target"], grid)))}
    for method in methods:
        result = pointing(maps[method], trials["target"], trials["other"])
        metrics[f"explain/{split}/{method}/pointing_acc"] = float(np.mean(result["hit"]))
        metrics[f"explain/{split}/{method}/distractor_rate"] = float(np.mean(result["distractor"]))
    metrics[f"explain/{split}/pointing_acc"] = max(
        metrics[f"explain/{split}/{m}/pointing_acc"] for m in methods)
    if picture_path:
        from multimodal_jax.evaluation import figures  # noqa: PLC0415 - PIL only where drawn

        shown = slice(0, block.get("pictures", 8))
        figures.relevance_grid(trials["image"][shown], prompts[shown.start:shown.stop],
                               {m: maps[m][shown] for m in methods},
                               picture_path.replace(".png", f"_explain_{split}.png"),
                               masks=trials["target"][shown])
    return metrics


def batched(fn, params, images: np.ndarray, text_emb: np.ndarray, batch_size: int) -> dict:
    """``fn(params, images, text_emb) -> {name: [B, ...]}`` over fixed-size chunks of the rows
    (the last one padded, so it compiles once), concatenated as numpy."""
    outs, total = [], len(images)
    for start in range(0, total, batch_size):
        x, t = images[start:start + batch_size], text_emb[start:start + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.repeat(x[:1], batch_size - n, axis=0)])
            t = np.concatenate([t, np.repeat(t[:1], batch_size - n, axis=0)])
        outs.append({k: np.asarray(v)[:n] for k, v in jax.device_get(fn(params, x, t)).items()})
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
