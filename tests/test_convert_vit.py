"""load_hf_vit reproduces Hugging Face's ViTModel / ViTForImageClassification to 1e-5.

Random-weight models of several shapes are saved with ``save_pretrained`` into tmp dirs,
every tensor nudged off its init. No downloads.
"""

import functools

import jax
import numpy as np
import pytest

from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import ViTWithPooler
from multimodal_jax.pretrained import load_hf_vit

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-5
# name: (model class, config kwargs)
ARCHS = {
    "classifier_gelu": ("ViTForImageClassification",
                        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, image_size=32, patch_size=8, num_labels=5)),
    "classifier_wide_tanh": ("ViTForImageClassification",
                             dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3,
                                  intermediate_size=80, image_size=24, patch_size=4, num_labels=7,
                                  hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)),
    "model_pooler_no_qkv_bias": ("ViTModel",
                                 dict(hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=56, image_size=28, patch_size=14,
                                      qkv_bias=False, pooler_output_size=24)),
}


def perturbed_vit(class_name: str, config: dict, seed: int = 0, **kwargs):
    """A random HF ViT with every tensor nudged off its init (LayerNorms, biases included)."""
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(transformers.ViTConfig(**config), **kwargs).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@functools.partial(jax.jit, static_argnums=0)
def apply(model, variables, images):
    """Jitted ``model.apply``; equal models share one compilation."""
    return model.apply(variables, images=images)


def outputs(torch_model, model, variables, size, seed=0):
    """(ours, HF's) outputs on the same random, already-normalised images."""
    images = np.random.default_rng(seed).normal(size=(3, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(pixel_values=torch.from_numpy(images))
    with jax.default_matmul_precision("float32"):
        out = apply(model, variables, images.transpose(0, 2, 3, 1))
    return jax.tree.map(np.asarray, out), ref


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b.numpy())))


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_hf_vit_matches_pytorch(arch, tmp_path):
    class_name, config = ARCHS[arch]
    torch_model = perturbed_vit(class_name, config)
    torch_model.save_pretrained(str(tmp_path))
    model, variables = load_hf_vit(str(tmp_path))
    out, ref = outputs(torch_model, model, variables, config["image_size"])
    if class_name == "ViTForImageClassification":
        assert isinstance(model, ViT)
        diffs = {"logits": max_abs(out["logits"], ref.logits)}
    else:
        assert isinstance(model, ViTWithPooler)
        diffs = {"pooled": max_abs(out["pooled"], ref.last_hidden_state[:, 0]),
                 "tokens": max_abs(out["tokens"], ref.last_hidden_state),
                 "pooler_output": max_abs(out["pooler_output"], ref.pooler_output)}
    assert max(diffs.values()) < TOL, diffs


def test_without_pooler_gives_plain_vit_params(tmp_path):
    """``with_pooler=False`` (and a checkpoint saved without one) give exactly a ViT's tree."""
    class_name, config = ARCHS["model_pooler_no_qkv_bias"]
    torch_model = perturbed_vit(class_name, config)
    torch_model.save_pretrained(str(tmp_path / "pooler"))
    model, variables = load_hf_vit(str(tmp_path / "pooler"), with_pooler=False)
    assert isinstance(model, ViT) and "pooler" not in variables["params"]
    out, ref = outputs(torch_model, model, variables, config["image_size"])
    assert max_abs(out["pooled"], ref.last_hidden_state[:, 0]) < TOL

    no_pooler = perturbed_vit(class_name, config, add_pooling_layer=False)
    no_pooler.save_pretrained(str(tmp_path / "plain"))
    model2, variables2 = load_hf_vit(str(tmp_path / "plain"))
    assert model2 == model
    assert jax.tree.structure(variables2) == jax.tree.structure(variables)


def test_wrong_image_size_in_config_is_named(tmp_path):
    class_name, config = ARCHS["classifier_gelu"]
    perturbed_vit(class_name, config).save_pretrained(str(tmp_path))
    cfg = (tmp_path / "config.json").read_text().replace('"image_size": 32', '"image_size": 40')
    (tmp_path / "config.json").write_text(cfg)
    with pytest.raises(ValueError) as err:
        load_hf_vit(str(tmp_path))
    msg = str(err.value)
    assert "embeddings.position_embeddings" in msg and "posemb/pos_embedding" in msg
    assert "(1, 17, 32)" in msg and "(1, 26, 32)" in msg
