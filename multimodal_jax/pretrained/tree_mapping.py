"""Shared machinery for importing PyTorch-layout weights into Flax parameter trees.

A conversion is a list of ``Rule(target, source, transform)``: model parameter path
(``"image_tower/encoder/block_0/attn/query/kernel"``), checkpoint key, and a numpy function
from the checkpoint's layout to Flax's. ``build_params`` applies the rules and checks them
against the model's own shapes, naming every missing, extra or misshapen parameter.
Files are read by ``weights_files.py`` (safetensors and ``.npz`` only, never pickle).
"""

import re
from typing import Callable
from typing import Iterable
from typing import NamedTuple
from typing import Optional
from typing import Sequence

import jax
import numpy as np


class Transform(NamedTuple):
    """A layout change from a checkpoint's tensor to a Flax parameter, and back
    (``inverse``, for exporting); callable as the forward change."""

    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)


class Piece(NamedTuple):
    """Part ``index`` of ``parts`` of a checkpoint tensor that several parameters share (a fused
    q/k/v projection): what ``chunk``'s inverse gives; ``export_params`` joins the parts."""

    index: int
    parts: int
    value: np.ndarray


IDENTITY = Transform(lambda x: x, lambda y: y)
MAX_LISTED = 12  # how many offending names an error message lists before "... and N more"


class Rule(NamedTuple):
    """Model parameter ``target`` comes from checkpoint key ``source`` through ``transform``.

    ``source=None`` fills the target with zeros (a bias the checkpoint's layer does not have).
    """

    target: str
    source: Optional[str]
    transform: Transform = IDENTITY


def strip_prefix(checkpoint: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Removes ``prefix`` from the keys that have it (e.g. DDP's ``module.``)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in checkpoint.items()}


# --- Hugging Face config values ---------------------------------------------------------------

# transformers' ACT2FN names -> multimodal_jax.models.layers activation names.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh",
                  "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                  "quick_gelu": "quick_gelu", "relu": "relu", "silu": "silu", "swish": "silu"}


def hf_activation(name: str) -> str:
    """Our activation name for transformers' ``hidden_act`` ``name``."""
    if name not in HF_ACTIVATIONS:
        raise ValueError(f"Activation {name!r} of this checkpoint is not supported; supported: "
                         f"{sorted(HF_ACTIVATIONS)}.")
    return HF_ACTIVATIONS[name]


def square(value, what: str) -> int:
    """An int from an int or an ``[n, n]`` pair (HF allows both for patch / image sizes)."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"Non-square {what} {value} is not supported.")
        value = value[0]
    return int(value)


# --- layout transforms (PyTorch -> Flax) ------------------------------------------------------

linear_kernel = Transform(lambda w: _expect_ndim(w, 2).T, lambda k: k.T)
"""``torch.nn.Linear`` weight ``[out, in]`` -> Flax ``Dense`` kernel ``[in, out]``."""

conv_kernel = Transform(lambda w: _expect_ndim(w, 4).transpose(2, 3, 1, 0),
                        lambda k: k.transpose(3, 2, 0, 1))
"""``torch.nn.Conv2d`` weight ``[out, in, kh, kw]`` -> Flax ``Conv`` ``[kh, kw, in, out]``."""


def heads_in_kernel(num_heads: int) -> Transform:
    """Linear weight ``[H*Dh, in]`` -> attention query/key/value kernel ``[in, H, Dh]``."""
    return Transform(lambda w: _expect_ndim(w, 2).T.reshape(w.shape[1], num_heads, -1),
                     lambda k: k.reshape(k.shape[0], -1).T)


def heads_bias(num_heads: int) -> Transform:
    """Bias ``[H*Dh]`` -> attention query/key/value bias ``[H, Dh]``."""
    return Transform(lambda b: _expect_ndim(b, 1).reshape(num_heads, -1), lambda b: b.reshape(-1))


def heads_out_kernel(num_heads: int) -> Transform:
    """Linear weight ``[out, H*Dh]`` -> attention output kernel ``[H, Dh, out]``."""
    return Transform(lambda w: _expect_ndim(w, 2).T.reshape(num_heads, -1, w.shape[0]),
                     lambda k: k.reshape(-1, k.shape[-1]).T)


def chunk(index: int, parts: int) -> Transform:
    """Part ``index`` of ``parts`` equal slices along axis 0 (splits a fused q/k/v tensor)."""
    def take(x):
        if x.shape[0] % parts:
            raise ValueError(f"axis 0 of shape {x.shape} does not split into {parts} equal parts")
        return np.split(x, parts, axis=0)[index]
    return Transform(take, lambda y: Piece(index, parts, y))


def reshape_to(*shape: int, source_shape: tuple = ()) -> Transform:
    """Reshapes to ``shape`` (one entry may be -1), e.g. a ``[D]`` class token to ``[1, 1, D]``;
    back to ``source_shape`` (a scalar by default: the checkpoints' temperatures)."""
    return Transform(lambda x: np.reshape(x, shape), lambda y: np.reshape(y, source_shape))


def add_leading_axes(count: int = 1) -> Transform:
    """Prepends ``count`` unit axes, e.g. a ``[L, D]`` position table to ``[1, L, D]``."""
    return Transform(lambda x: np.reshape(x, (1,) * count + x.shape),
                     lambda y: np.reshape(y, y.shape[count:]))


def compose(*fns: Transform) -> Transform:
    """``compose(f, g)(x) == g(f(x))``: transforms applied left to right (undone right to left)."""
    def run(x, steps):
        for fn in steps:
            x = fn(x)
        return x
    return Transform(lambda x: run(x, [f.forward for f in fns]),
                     lambda y: run(y, [f.inverse for f in reversed(fns)]))


def _expect_ndim(x: np.ndarray, ndim: int) -> np.ndarray:
    if x.ndim != ndim:
        raise ValueError(f"expected a {ndim}-d tensor, got shape {x.shape}")
    return x


# --- rules for common layers ------------------------------------------------------------------

def dense_rules(target: str, source: str, bias: bool = True) -> list[Rule]:
    """``torch.nn.Linear`` at ``source`` -> Flax ``Dense`` at ``target``."""
    rules = [Rule(f"{target}/kernel", f"{source}.weight", linear_kernel)]
    if bias:
        rules.append(Rule(f"{target}/bias", f"{source}.bias"))
    return rules


def layer_norm_rules(target: str, source: str) -> list[Rule]:
    """``torch.nn.LayerNorm`` (weight, bias) -> Flax ``LayerNorm`` (scale, bias)."""
    return [Rule(f"{target}/scale", f"{source}.weight"), Rule(f"{target}/bias", f"{source}.bias")]


def attention_rules(target: str, q: str, k: str, v: str, out: str, num_heads: int,
                    qkv_bias: bool = True) -> list[Rule]:
    """Separate q/k/v/out ``Linear`` layers -> Flax ``MultiHeadDotProductAttention``."""
    rules = []
    for name, source in (("query", q), ("key", k), ("value", v)):
        rules.append(Rule(f"{target}/{name}/kernel", f"{source}.weight",
                          heads_in_kernel(num_heads)))
        rules.append(Rule(f"{target}/{name}/bias",
                          f"{source}.bias" if qkv_bias else None, heads_bias(num_heads)))
    rules.append(Rule(f"{target}/out/kernel", f"{out}.weight", heads_out_kernel(num_heads)))
    rules.append(Rule(f"{target}/out/bias", f"{out}.bias"))
    return rules


def fused_attention_rules(target: str, source: str, num_heads: int) -> list[Rule]:
    """``torch.nn.MultiheadAttention`` (``in_proj_weight`` = [q; k; v], ``out_proj``) -> Flax."""
    rules = []
    for i, name in enumerate(("query", "key", "value")):
        rules.append(Rule(f"{target}/{name}/kernel", f"{source}.in_proj_weight",
                          compose(chunk(i, 3), heads_in_kernel(num_heads))))
        rules.append(Rule(f"{target}/{name}/bias", f"{source}.in_proj_bias",
                          compose(chunk(i, 3), heads_bias(num_heads))))
    rules.append(Rule(f"{target}/out/kernel", f"{source}.out_proj.weight",
                      heads_out_kernel(num_heads)))
    rules.append(Rule(f"{target}/out/bias", f"{source}.out_proj.bias"))
    return rules


# --- applying rules ---------------------------------------------------------------------------

def param_shapes(model, *args, **kwargs) -> dict[str, tuple[int, ...]]:
    """``{"a/b/kernel": shape}`` of ``model``'s params for these inputs, without computing them."""
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args, **kwargs)
    return {path: tuple(leaf.shape) for path, leaf in flatten(variables["params"]).items()}


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dict -> ``{"a/b/c": leaf}``."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) or hasattr(value, "items"):
            out.update(flatten(value, path + "/"))
        else:
            out[path] = value
    return out


def unflatten(flat: dict) -> dict:
    """``{"a/b/c": leaf}`` -> nested dict."""
    tree: dict = {}
    for path, leaf in flat.items():
        *parents, name = path.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = leaf
    return tree


def build_params(rules: Sequence[Rule], checkpoint: dict[str, np.ndarray],
                 shapes: dict[str, tuple[int, ...]], ignore: Iterable[str] = (),
                 what: str = "checkpoint") -> dict:
    """Nested float32 params from ``checkpoint`` by ``rules``, checked against ``shapes``.

    Raises one ``ValueError`` naming every checkpoint key the rules need but cannot find
    (missing), every key no rule uses and no ``ignore`` regex matches (extra), and every
    converted tensor whose shape differs from the model's (with both shapes).
    """
    ignore_res = [re.compile(pattern) for pattern in ignore]
    flat, problems, used = {}, [], set()
    for rule in rules:
        if rule.target not in shapes:
            raise AssertionError(f"Conversion rule names model parameter {rule.target!r}, which "
                                 "the model does not have (a bug in multimodal_jax.pretrained).")
        expected = shapes[rule.target]
        if rule.source is None:
            flat[rule.target] = np.zeros(expected, np.float32)
            continue
        if rule.source not in checkpoint:
            problems.append(f"missing: {what} has no {rule.source!r} (for model parameter "
                            f"{rule.target!r}, shape {expected})")
            continue
        used.add(rule.source)
        value, problem = _convert_one(rule, checkpoint[rule.source], expected)
        if problem:
            problems.append(problem)
        else:
            flat[rule.target] = value
    problems += _extra_keys(checkpoint, used, ignore_res, what)
    unmapped = sorted(set(shapes) - {rule.target for rule in rules})
    if unmapped:
        raise AssertionError(f"Model parameters {unmapped} have no conversion rule (a bug in "
                             "multimodal_jax.pretrained, or a model field it does not support).")
    if problems:
        raise ValueError(_problem_message(problems, what))
    return unflatten(flat)


def _convert_one(rule: Rule, raw: np.ndarray, expected: tuple[int, ...]):
    """(converted float32 array, None) or (None, a message naming both shapes)."""
    raw = np.asarray(raw)
    head = f"shape mismatch: {rule.source!r} has shape {tuple(raw.shape)}, model parameter " \
           f"{rule.target!r} needs {expected}"
    try:
        value = np.asarray(rule.transform(raw.astype(np.float32)), np.float32)
    except ValueError as err:
        return None, f"{head} ({err})"
    if tuple(value.shape) != tuple(expected):
        return None, f"{head} (converted to {tuple(value.shape)})"
    return value, None


def _extra_keys(checkpoint, used, ignore_res, what) -> list[str]:
    extra = [key for key in sorted(checkpoint)
             if key not in used and not any(r.search(key) for r in ignore_res)]
    return [f"extra: {what} has {key!r} (shape {tuple(np.shape(checkpoint[key]))}), which "
            "this model does not use" for key in extra]


def _problem_message(problems: list[str], what: str) -> str:
    listed = problems[:MAX_LISTED]
    more = len(problems) - len(listed)
    lines = "\n  ".join(listed) + (f"\n  ... and {more} more" if more else "")
    return (f"The {what} does not fit the model built from its config ({len(problems)} "
            f"problem(s)):\n  {lines}\nCheck that the config matches the weights (sizes, number "
            "of layers, heads) and that the checkpoint is of the kind this loader reads.")


def export_params(rules: Sequence[Rule], params: dict, what: str = "the model") -> dict[str, np.ndarray]:
    """The checkpoint tensors ``{key: float32 array}`` that ``rules`` would import as ``params``:
    each rule undone (``Transform.inverse``), the parts of fused tensors joined. Every parameter
    must be some rule's target (else the format has no place for it), and a parameter a rule
    fills with zeros on import must be zero."""
    flat = {path: np.asarray(jax.device_get(leaf), np.float32) for path, leaf in flatten(params).items()}
    unplaced = sorted(set(flat) - {rule.target for rule in rules})
    if unplaced:
        raise ValueError(f"{what} has parameters the format has no place for: {unplaced[:MAX_LISTED]}.")
    out, pieces = {}, {}
    for rule in rules:
        value = flat[rule.target]
        if rule.source is None:
            if np.any(value != 0):
                raise ValueError(f"{what}: {rule.target!r} is not zero, and the format has no such "
                                 "parameter (it would be dropped).")
            continue
        exported = rule.transform.inverse(value)
        if isinstance(exported, Piece):
            pieces.setdefault(rule.source, {})[exported.index] = exported
        else:
            out[rule.source] = np.array(exported, np.float32, order="C")  # (keeps 0-d tensors 0-d)
    for source, parts in pieces.items():
        count = next(iter(parts.values())).parts
        if sorted(parts) != list(range(count)):
            raise AssertionError(f"{source!r}: parts {sorted(parts)} of {count} (a bug in the rules).")
        out[source] = np.array(np.concatenate([parts[i].value for i in range(count)]), np.float32,
                               order="C")
    return out
