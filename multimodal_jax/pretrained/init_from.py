"""Pretrained image towers for fine-tuning, LiT and probes: ``config.init_from = "KIND:PATH"``.

Kinds: ``workdir:DIR`` (the newest checkpoint of one of our runs: a contrastive run's
``image_tower``, or a classification run's ViT without its head; a bare path means this),
``hf_clip:DIR`` / ``openai_clip:FILE`` (published CLIP weights, ``multimodal_jax.pretrained``),
``hf_siglip:DIR`` (a Hugging Face SigLIP or SigLIP 2) and ``hf_vit:DIR`` (a Hugging Face ViT).
The tower's parameters replace the fresh ones of the same names; the model config must describe
the same architecture (a clear error says which parameter disagrees). Learned position
embeddings are resized when the image size differs.
"""

import os

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

from multimodal_jax import paths
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.pretrained import hf_clip
from multimodal_jax.pretrained import hf_siglip
from multimodal_jax.pretrained import hf_vit
from multimodal_jax.pretrained import openai_clip
from multimodal_jax.pretrained import weights_files

KINDS = ("workdir", "hf_clip", "hf_siglip", "openai_clip", "hf_vit")
# Leaves a tower may carry that a fine-tuned model replaces or does not have.
DROPPED = ("head", "pooler")


def parse(spec: str) -> tuple[str, str]:
    """``"hf_clip:/p"`` -> ``("hf_clip", "/p")``; a bare path is a workdir."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS:
        if sep and not paths.is_url(spec) and not os.path.exists(spec) and "/" not in kind:
            raise ValueError(f"init_from={spec!r}: unknown kind {kind!r}; write KIND:PATH with KIND "
                             f"one of {KINDS}, e.g. 'workdir:/path/to/clip_run'.")
        return "workdir", spec
    return kind, path


def check_spec(spec: str) -> None:
    """``config.init_from`` names weights that exist and look like what its kind reads
    (opened, never executed); ``ValueError`` otherwise."""
    kind, path = parse(spec)
    where = f"config.init_from={spec!r}"
    if not paths.as_path(path).exists():
        raise ValueError(f"{where}: {path!r} does not exist.")
    if kind == "workdir":
        if not paths.as_path(os.path.join(path, workdir_lib.CHECKPOINTS)).is_dir():
            raise ValueError(f"{where}: {path!r} holds no checkpoints/ folder; give the workdir "
                             "of a finished run.")
        return
    files = [path]
    if os.path.isdir(path):
        if kind != "openai_clip" and not os.path.exists(os.path.join(path, "config.json")):
            raise ValueError(f"{where}: {path!r} has no config.json; give a folder written by "
                             "Hugging Face `save_pretrained`.")
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]
        if not files:
            raise ValueError(f"{where}: {path!r} holds no .safetensors weights (pickle-based "
                             "pytorch_model.bin files are not loaded, for safety); re-save the "
                             "model with safetensors.")
    for file in files:
        weights_files.check_weights_file(file, where)


def restore_params(workdir: str) -> dict:
    """The ``params`` of the newest checkpoint in ``workdir`` (nothing else is read), on this
    process's first device, whatever the device layout it was saved from."""
    directory = workdir_lib.checkpoint_dir(workdir)
    if not paths.as_path(directory).is_dir():
        raise FileNotFoundError(f"init_from: {workdir!r} holds no checkpoints/ folder; give the "
                                "workdir of a finished run (python -m train ... --workdir DIR).")
    manager = ocp.CheckpointManager(directory, item_handlers=ocp.PyTreeCheckpointHandler(),
                                    options=ocp.CheckpointManagerOptions(create=False))  # reads
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"init_from: no checkpoint in {directory!r}.")
    device = SingleDeviceSharding(jax.local_devices()[0])
    saved = manager.item_metadata(step).tree["params"]
    abstract = {"params": jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)}
    restored = manager.restore(step, args=ocp.args.PyTreeRestore(
        abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
        partial_restore=True))
    manager.close()
    return restored["params"]


def tower_of(params: dict) -> dict:
    """A two-tower model's ``image_tower``, else the params themselves (a ViT)."""
    return params["image_tower"] if "image_tower" in params else params


def load_params(spec: str) -> dict:
    """All the parameters named by ``spec``: a run's, or a published model's (see the module
    docstring)."""
    kind, path = parse(spec)
    if kind == "workdir":
        return restore_params(path)
    loader = {"hf_clip": hf_clip.load_hf_clip, "hf_siglip": hf_siglip.load_hf_siglip,
              "openai_clip": openai_clip.load_openai_clip, "hf_vit": hf_vit.load_hf_vit}[kind]
    _, variables = loader(path)
    return variables["params"]


def load_image_tower(spec: str) -> dict:
    """The ViT parameters named by ``spec``."""
    return tower_of(load_params(spec))


def load_two_tower(spec: str) -> dict:
    """Both towers, projections and temperature of the contrastive model named by ``spec``."""
    params = load_params(spec)
    if "text_tower" not in params:
        raise ValueError(f"init_from={spec!r} holds an image model only, not both towers of a "
                         "contrastive model; set config.init_towers='image' to start the image "
                         "tower from it and train a fresh text tower.")
    return params


def _flat(tree: dict, prefix=()) -> dict:
    """Nested dict -> {("a", "b"): leaf}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) or hasattr(value, "items"):
            out.update(_flat(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def _unflat(flat: dict) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def _grid(length: int) -> tuple[int, int]:
    """(class tokens, grid side) of a position table of ``length`` rows."""
    for extra in (0, 1):
        side = int(round((length - extra) ** 0.5))
        if side * side == length - extra:
            return extra, side
    raise ValueError(f"A position embedding of {length} rows is not a square grid (+1 class token).")


def resize_posemb(table, length: int):
    """A learned ``[1, N, D]`` table -> ``[1, length, D]``: the patch grid resized bilinearly
    (class-token rows kept as they are)."""
    (extra, side), (new_extra, new_side) = _grid(table.shape[1]), _grid(length)
    if extra != new_extra:
        raise ValueError("init_from: the pretrained tower and the model disagree on the class "
                         "token (model.image.pool='tok' or not); use the tower's pooling.")
    grid = table[:, extra:].reshape(side, side, -1)
    grid = jax.image.resize(grid, (new_side, new_side, grid.shape[-1]), "bilinear")
    return jnp.concatenate([table[:, :extra], grid.reshape(1, new_side * new_side, -1)], axis=1)


def merge(fresh: dict, tower: dict, keep_fresh=("head",), at: tuple = ()) -> dict:
    """``fresh`` with the leaves under ``at`` taken from ``tower`` (same relative names), except
    those under ``keep_fresh``; errors name what is missing, extra or of another shape."""
    flat_fresh, flat_tower = _flat(fresh), _flat(tower)
    wanted = {p[len(at):]: p for p in flat_fresh
              if p[:len(at)] == at and p[len(at)] not in keep_fresh}
    missing = sorted("/".join(p) for p in wanted if p not in flat_tower)
    extra = sorted("/".join(p) for p in flat_tower if p not in wanted and p[0] not in DROPPED)
    if missing or extra:
        where = "config.model" if "text_tower" in tower else "config.model.image"
        raise ValueError(
            f"init_from: the pretrained weights do not match {where}. Missing from them: "
            f"{missing[:6]}; in them but not in the model: {extra[:6]}. Set the model fields "
            "(variant/width/depth, pool, pre_norm, patch_bias, proj_bias, ...) to theirs.")
    out = dict(flat_fresh)
    for rel, path in wanted.items():
        value, target = flat_tower[rel], flat_fresh[path]
        if rel[-1] == "pos_embedding" and value.shape != target.shape and value.ndim == 3:
            value = resize_posemb(value, target.shape[1])
        if value.shape != target.shape:
            raise ValueError(f"init_from: {'/'.join(rel)} is {value.shape} in the pretrained "
                             f"weights but {target.shape} in the model; set config.model to match.")
        out[path] = jnp.asarray(value, target.dtype)
    return _unflat(out)


def load_into(fresh: dict, spec: str, keep_fresh=("head",), at: tuple = ()) -> dict:
    """``merge(fresh, load_image_tower(spec), ...)``: fresh params with a pretrained tower."""
    return merge(fresh, load_image_tower(spec), keep_fresh, at)


def vit_depth(params) -> int:
    """Number of ``block_i`` in a ViT's (or a two-tower's image) ``encoder``."""
    encoder = tower_of(params)["encoder"]
    return sum(1 for k in encoder if str(k).startswith("block_"))
