"""Our models as Hugging Face folders: a two-tower model that ``CLIPModel`` can express becomes
``config.json``, ``model.safetensors``, the CLIP BPE tokenizer files and
``preprocessor_config.json`` (``CLIPModel.from_pretrained`` loads it with no missing or
unexpected weights, the same logits to 1e-5); a ViT classifier becomes a
``ViTForImageClassification`` folder. The tensors are the importers' rules undone
(``hf_clip.clip_rules``, ``hf_vit.vit_rules``), so importing an export gives back the same
parameters. What the target class cannot express is a ``NotExpressible`` error naming each
difference with the config field to change. Neither torch nor transformers is needed.
"""

import json
import os
from typing import Optional
from typing import Sequence

from safetensors.numpy import save_file

from multimodal_jax.models.two_tower import TwoTower
from multimodal_jax.models.vit import ViT
from multimodal_jax.pretrained import hf_clip
from multimodal_jax.pretrained import hf_vit
from multimodal_jax.pretrained import tree_mapping as tm

# Our activation names -> transformers' ACT2FN names (the inverse of tm.HF_ACTIVATIONS).
HF_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "quick_gelu": "quick_gelu",
          "relu": "relu", "silu": "silu"}
WEIGHTS = "model.safetensors"


class NotExpressible(ValueError):
    """The model has parts the target format has no place for; the message names each."""


def raise_if(differences: list[str], target: str) -> None:
    if differences:
        raise NotExpressible(f"{target} cannot express this model: " + "; ".join(differences) + ".")


def vit_fields(vit: ViT, where: str, target: str, *, pool: str, patch_bias: bool,
               pre_norm: bool) -> list[str]:
    """How ``vit`` differs from the image tower of ``target`` (a class or format name)."""
    needs = dict(pool=(pool, "pools the class token"), posemb=("learn", "learns its position table"),
                 patch_bias=(patch_bias, "has " + ("a" if patch_bias else "no") + " patch-embedding bias"),
                 pre_norm=(pre_norm, ("normalises" if pre_norm else "does not normalise")
                           + " the embeddings before the encoder (ln_pre)"),
                 final_norm=(True, "normalises the encoder's output"))
    out = [f"{where}.{name}={getattr(vit, name)!r}, but {target} {why} ({name}={value!r})"
           for name, (value, why) in needs.items() if getattr(vit, name) != value]
    if vit.act not in HF_ACT:
        out.append(f"{where}.act={vit.act!r} has no transformers activation")
    return out


def clip_differences(model: TwoTower, tokenizer_kind: str) -> list[str]:
    """Why ``CLIPModel`` cannot express ``model`` (none: it can)."""
    out = vit_fields(model.image_tower, "config.model.image", "CLIPModel", pool="tok",
                     patch_bias=False, pre_norm=True)
    if model.image_tower.num_classes:
        out.append("config.model.image.num_classes is set: CLIPModel's image tower has no head")
    text = model.text_tower
    if not text.causal:
        out.append("config.model.text.causal=False: CLIPModel's text tower is causal")
    if text.pool not in ("eos", "argmax"):
        out.append(f"config.model.text.pool={text.pool!r}: CLIPModel pools at the end-of-text token "
                   "(pool='eos')")
    elif text.pool == "eos" and text.eos_id == 2:
        out.append("config.model.text.pool='eos' with end-of-text id 2: CLIPModel reads id 2 as "
                   "its legacy rule and pools at the highest id instead")
    elif text.pool == "argmax" and text.eos_id not in (2, text.vocab_size - 1):
        out.append("config.model.text.pool='argmax' with an end-of-text id that is not the highest")
    if text.act not in HF_ACT:
        out.append(f"config.model.text.act={text.act!r} has no transformers activation")
    if model.proj_bias:
        out.append("config.model.proj_bias=True: CLIPModel's projections have no bias")
    if not model.project_image:
        out.append("config.model.project_image=False: CLIPModel projects the image features "
                   "(visual_projection)")
    if model.logit_bias_init is not None:
        out.append("config.loss='sigmoid': the model has SigLIP's logit bias, which CLIPModel lacks")
    if tokenizer_kind != "clip_bpe":
        out.append(f"config.tokenizer.kind={tokenizer_kind!r}: CLIPModel's tokenizer (CLIPTokenizer) "
                   "is CLIP's byte-level BPE; train with tokenizer.kind='clip_bpe' (as "
                   "configs/clip_shapes_hf.py does)")
    return out


def clip_config(model: TwoTower, image_size: int, bos_id: int) -> dict:
    """The ``config.json`` of ``CLIPModel`` for ``model``."""
    vit, text = model.image_tower, model.text_tower
    size = vit.size()
    vision = dict(model_type="clip_vision_model", hidden_size=size["width"],
                  intermediate_size=size["mlp_dim"], num_hidden_layers=size["depth"],
                  num_attention_heads=size["num_heads"], patch_size=size["patch_size"],
                  image_size=int(image_size), num_channels=3, hidden_act=HF_ACT[vit.act],
                  layer_norm_eps=float(vit.ln_eps), projection_dim=model.embed_dim)
    text_config = dict(model_type="clip_text_model", vocab_size=text.vocab_size,
                       hidden_size=text.width, intermediate_size=text.mlp_dim or 4 * text.width,
                       num_hidden_layers=text.depth, num_attention_heads=text.num_heads,
                       max_position_embeddings=text.max_len, hidden_act=HF_ACT[text.act],
                       layer_norm_eps=float(text.ln_eps), pad_token_id=text.pad_id,
                       bos_token_id=bos_id, eos_token_id=text.eos_id, projection_dim=model.embed_dim)
    return dict(architectures=["CLIPModel"], model_type="clip", projection_dim=model.embed_dim,
                logit_scale_init_value=float(model.logit_scale_init), initializer_factor=1.0,
                text_config=text_config, vision_config=vision)


def write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _write_tokenizer(out_dir: str, tokenizer, max_len: int) -> None:
    """``vocab.json``, ``merges.txt`` and the tokenizer settings ``CLIPTokenizer`` reads."""
    merges = sorted(tokenizer.ranks, key=tokenizer.ranks.get)
    write_json(os.path.join(out_dir, "vocab.json"), dict(tokenizer.encoder))
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    specials = dict(bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                    unk_token="<|endoftext|>", pad_token=tokenizer.decoder[tokenizer.pad_id])
    write_json(os.path.join(out_dir, "tokenizer_config.json"),
                dict(tokenizer_class="CLIPTokenizer", model_max_length=int(max_len),
                     do_lower_case=True, errors="replace", **specials))
    write_json(os.path.join(out_dir, "special_tokens_map.json"), specials)


def _processor(kind: str, image_size: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """An image processor config with our image size and normalisation (bilinear resize)."""
    common = dict(do_resize=True, resample=2, do_rescale=True, rescale_factor=1 / 255,
                  do_normalize=True, image_mean=[float(m) for m in mean],
                  image_std=[float(s) for s in std])
    if kind == "clip":
        return dict(image_processor_type="CLIPImageProcessor", size={"shortest_edge": image_size},
                    do_center_crop=True, crop_size={"height": image_size, "width": image_size},
                    do_convert_rgb=True, **common)
    return dict(image_processor_type="ViTImageProcessor",
                size={"height": image_size, "width": image_size}, **common)


def export_clip(model: TwoTower, params: dict, out_dir: str, *, image_size: int,
                mean: Sequence[float], std: Sequence[float], tokenizer, tokenizer_kind: str,
                max_len: int) -> list[str]:
    """Writes ``model`` + ``params`` as a ``CLIPModel`` folder; returns the files written."""
    raise_if(clip_differences(model, tokenizer_kind), "Hugging Face CLIPModel")
    config = clip_config(model, image_size, tokenizer.bos_id)
    rules = hf_clip.clip_rules(model.text_tower.depth, model.image_tower.size()["depth"],
                               model.text_tower.num_heads, model.image_tower.size()["num_heads"])
    tensors = tm.export_params(rules, params, "the contrastive model")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "config.json"), config)
    save_file(tensors, os.path.join(out_dir, WEIGHTS), metadata={"format": "pt"})
    _write_tokenizer(out_dir, tokenizer, max_len)
    write_json(os.path.join(out_dir, "preprocessor_config.json"),
                _processor("clip", image_size, mean, std))
    return sorted(os.listdir(out_dir))


def vit_differences(vit: ViT) -> list[str]:
    """Why ``ViTForImageClassification`` cannot express ``vit`` (none: it can)."""
    out = vit_fields(vit, "config.model.image", "ViTForImageClassification", pool="tok",
                     patch_bias=True, pre_norm=False)
    if not vit.num_classes:
        out.append("the model has no classification head (config.num_classes)")
    return out


def vit_config(vit: ViT, image_size: int, class_names: Optional[Sequence[str]]) -> dict:
    """The ``config.json`` of ``ViTForImageClassification`` for ``vit``."""
    size = vit.size()
    names = list(class_names) if class_names else [str(i) for i in range(vit.num_classes)]
    return dict(architectures=["ViTForImageClassification"], model_type="vit",
                hidden_size=size["width"], num_hidden_layers=size["depth"],
                num_attention_heads=size["num_heads"], intermediate_size=size["mlp_dim"],
                hidden_act=HF_ACT[vit.act], layer_norm_eps=float(vit.ln_eps),
                image_size=int(image_size), patch_size=size["patch_size"], num_channels=3,
                qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                encoder_stride=size["patch_size"],
                id2label={str(i): n for i, n in enumerate(names)},
                label2id={n: i for i, n in enumerate(names)})


def export_vit(vit: ViT, params: dict, out_dir: str, *, image_size: int, mean: Sequence[float],
               std: Sequence[float], class_names: Optional[Sequence[str]] = None) -> list[str]:
    """Writes a ViT classifier as a ``ViTForImageClassification`` folder; returns its files."""
    raise_if(vit_differences(vit), "Hugging Face ViTForImageClassification")
    size = vit.size()
    rules = hf_vit.vit_rules(size["depth"], size["num_heads"], True, head=True, pooler=False)
    tensors = tm.export_params(rules, params, "the classifier")
    tensors = {(k if k.startswith("classifier.") else "vit." + k): v for k, v in tensors.items()}
    if class_names is not None and len(class_names) != vit.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {vit.num_classes}-way head.")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "config.json"), vit_config(vit, image_size, class_names))
    save_file(tensors, os.path.join(out_dir, WEIGHTS), metadata={"format": "pt"})
    write_json(os.path.join(out_dir, "preprocessor_config.json"),
                _processor("vit", image_size, mean, std))
    return sorted(os.listdir(out_dir))


__all__ = ["NotExpressible", "clip_differences", "export_clip", "export_vit", "vit_differences"]
