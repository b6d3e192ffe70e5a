"""load_hf_clip / load_openai_clip reproduce Hugging Face's CLIPModel to 1e-5 in float32.

Random-weight CLIPModels of several shapes are saved with ``save_pretrained`` into tmp dirs
(all weights, LayerNorms and biases included, are perturbed so that no mapping mistake hides
behind a zero or a one). No downloads.
"""

import json

import numpy as np
import pytest

from multimodal_jax.pretrained import load_hf_clip
from multimodal_jax.pretrained import load_openai_clip
from multimodal_jax.pretrained import load_pretrained
from tests.hf_clip_reference import ARCHS
from tests.hf_clip_reference import EOS
from tests.hf_clip_reference import TOL
from tests.hf_clip_reference import max_diffs
from tests.hf_clip_reference import perturbed_clip
from tests.hf_clip_reference import random_inputs
from tests.hf_clip_reference import reference

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402


@pytest.fixture(scope="module", params=sorted(ARCHS))
def hf_clip(request, tmp_path_factory):
    """(torch model, its save_pretrained dir, inputs, reference outputs) for one architecture."""
    *arch, token_len = ARCHS[request.param]
    model = perturbed_clip(*arch)
    path = tmp_path_factory.mktemp(f"clip_{request.param}")
    model.save_pretrained(str(path))
    images, tokens = random_inputs(model, token_len)
    return model, path, (images, tokens), reference(model, images, tokens)


def test_hf_clip_matches_pytorch(hf_clip):
    _, path, (images, tokens), ref = hf_clip
    model, variables = load_hf_clip(str(path))
    diffs = max_diffs(model, variables, images, tokens, ref)
    assert max(diffs.values()) < TOL, diffs


def to_openai_state_dict(hf_state: dict) -> dict:
    """Renames an HF CLIPModel state dict into OpenAI / open_clip names, fusing q, k, v."""
    out = {"logit_scale": hf_state["logit_scale"],
           "visual.proj": hf_state["visual_projection.weight"].T,
           "text_projection": hf_state["text_projection.weight"].T}
    for hf, oa in [("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
                   ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
                   ("vision_model.embeddings.position_embedding.weight",
                    "visual.positional_embedding"),
                   ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
                   ("text_model.embeddings.position_embedding.weight", "positional_embedding")]:
        out[oa] = hf_state[hf]
    for hf, oa in [("vision_model.pre_layrnorm", "visual.ln_pre"),
                   ("vision_model.post_layernorm", "visual.ln_post"),
                   ("text_model.final_layer_norm", "ln_final")]:
        for p in ("weight", "bias"):
            out[f"{oa}.{p}"] = hf_state[f"{hf}.{p}"]
    for hf_tower, oa_tower in [("vision_model", "visual.transformer"),
                               ("text_model", "transformer")]:
        i = 0
        while f"{hf_tower}.encoder.layers.{i}.layer_norm1.weight" in hf_state:
            src, dst = f"{hf_tower}.encoder.layers.{i}", f"{oa_tower}.resblocks.{i}"
            for p in ("weight", "bias"):
                out[f"{dst}.attn.in_proj_{p}"] = np.concatenate(
                    [hf_state[f"{src}.self_attn.{n}_proj.{p}"] for n in "qkv"], axis=0)
                for hf_name, oa_name in [("self_attn.out_proj", "attn.out_proj"),
                                         ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                                         ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]:
                    out[f"{dst}.{oa_name}.{p}"] = hf_state[f"{src}.{hf_name}.{p}"]
            i += 1
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_openai_naming_matches_pytorch(hf_clip, tmp_path, fmt):
    torch_model, path, (images, tokens), ref = hf_clip
    state = to_openai_state_dict(load_file(str(path / "model.safetensors")))
    file = tmp_path / f"openai.{fmt}"
    if fmt == "npz":
        np.savez(file, **state)
    else:
        save_file(state, str(file))
    text, vision = torch_model.config.text_config, torch_model.config.vision_config
    pool = "argmax" if text.eos_token_id == 2 else "eos"
    model, variables = load_openai_clip(
        str(file), act=text.hidden_act, ln_eps=text.layer_norm_eps, text_pool=pool,
        eos_id=EOS, vision_heads=vision.num_attention_heads, text_heads=text.num_attention_heads)
    diffs = max_diffs(model, variables, images, tokens, ref)
    assert max(diffs.values()) < TOL, diffs


def test_openai_infers_heads_from_width(tmp_path):
    """Widths that are multiples of 64 need no head counts (OpenAI's width // 64 rule)."""
    torch_model = perturbed_clip(
        dict(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=1,
             max_position_embeddings=8),
        dict(hidden_size=128, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
             image_size=16, patch_size=8), 32, seed=1)
    images, tokens = random_inputs(torch_model, 8, seed=1)
    state = {k: v.numpy() for k, v in torch_model.state_dict().items() if "position_ids" not in k}
    save_file(to_openai_state_dict(state), str(tmp_path / "open_clip_model.safetensors"))
    model, variables = load_pretrained(str(tmp_path))  # a directory: open_clip's file name
    assert model.image_tower.num_heads == 2 and model.text_tower.num_heads == 1
    diffs = max_diffs(model, variables, images, tokens, reference(torch_model, images, tokens))
    assert max(diffs.values()) < TOL, diffs


# --- errors -----------------------------------------------------------------------------------

@pytest.fixture()
def small_dir(tmp_path):
    model = perturbed_clip(*ARCHS["quick_gelu"][:3])
    model.save_pretrained(str(tmp_path))
    return tmp_path


def _edit_weights(path, fn):
    file = str(path / "model.safetensors")
    state = load_file(file)
    fn(state)
    save_file(state, file, metadata={"format": "pt"})


def test_shape_mismatch_names_parameter_and_both_shapes(small_dir):
    config = json.loads((small_dir / "config.json").read_text())
    config["vision_config"]["intermediate_size"] = 72
    (small_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        load_hf_clip(str(small_dir))
    msg = str(err.value)
    assert "vision_model.encoder.layers.0.mlp.fc1.weight" in msg
    assert "image_tower/encoder/block_0/mlp/fc1/kernel" in msg
    assert "(96, 32)" in msg and "(32, 72)" in msg


def test_missing_and_extra_parameters_are_named(small_dir):
    def edit(state):
        del state["text_model.final_layer_norm.bias"]
        state["text_model.extra.weight"] = np.zeros((3,), np.float32)
    _edit_weights(small_dir, edit)
    with pytest.raises(ValueError) as err:
        load_hf_clip(str(small_dir))
    msg = str(err.value)
    assert "missing" in msg and "text_model.final_layer_norm.bias" in msg
    assert "extra" in msg and "text_model.extra.weight" in msg


def test_pickle_files_are_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="pickle"):
        load_openai_clip(str(tmp_path / "model.bin"))
