"""Random-weight Hugging Face SiglipModels / Siglip2Models, their outputs and a SigLIP-style
SentencePiece tokenizer: the PyTorch reference of the SigLIP import tests (no downloads)."""

import numpy as np
import pytest

from tests import hf_clip_reference

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = hf_clip_reference.TOL
VOCAB = 64
# name: (kind, text config, vision config, token length fed in, image size fed in)
ARCHS = {
    "siglip_tanh": ("siglip", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, max_position_embeddings=12),
                    dict(hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, image_size=32, patch_size=8), 12, None),
    "siglip_gelu": ("siglip", dict(hidden_size=48, intermediate_size=72, num_hidden_layers=1,
                                   num_attention_heads=3, max_position_embeddings=9,
                                   hidden_act="gelu", layer_norm_eps=1e-5, projection_size=40),
                    dict(hidden_size=40, intermediate_size=56, num_hidden_layers=3,
                         num_attention_heads=5, image_size=28, patch_size=7, hidden_act="gelu",
                         layer_norm_eps=1e-5), 6, None),  # texts shorter than the table
    "siglip2_native": ("siglip2", dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                       num_attention_heads=4, max_position_embeddings=10),
                       dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_patches=16, patch_size=4), 10, None),
    "siglip2_resized": ("siglip2", dict(hidden_size=24, intermediate_size=40, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=8),
                        dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=3, num_patches=16, patch_size=4,
                             layer_norm_eps=1e-5), 8, 24),  # 4x4 table at 6x6 patches
    "siglip2_shrunk": ("siglip2", dict(hidden_size=24, intermediate_size=40, num_hidden_layers=1,
                                       num_attention_heads=2, max_position_embeddings=8),
                       dict(hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                            num_attention_heads=3, num_patches=25, patch_size=4), 8, 12),  # 5x5 at 3x3
}


def perturbed_siglip(kind: str, text: dict, vision: dict, seed: int = 0):
    """A SiglipModel / Siglip2Model with random weights, every tensor nudged off its init."""
    torch.manual_seed(seed)
    make = (transformers.SiglipConfig, transformers.SiglipModel) if kind == "siglip" else (
        transformers.Siglip2Config, transformers.Siglip2Model)
    config = make[0](text_config=dict(vocab_size=VOCAB, pad_token_id=1, eos_token_id=1, **text),
                     vision_config=vision)
    config._attn_implementation = "eager"
    model = make[1](config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        model.logit_scale.fill_(2.1)
        model.logit_bias.fill_(-3.7)
    return model


def random_inputs(length: int, size: int, batch_images: int = 3, seed: int = 0):
    """NCHW pixels and ``ids eos pad(=eos)...`` rows ``[4, length]`` of several lengths."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch_images, 3, size, size)).astype(np.float32)
    tokens = np.ones((4, length), np.int32)
    for row, n in enumerate([1, 3, length - 1, length // 2]):
        tokens[row, :n] = rng.integers(2, VOCAB, n)
    return images, tokens


def patches(images: np.ndarray, patch: int) -> np.ndarray:
    """NCHW -> ``[B, N, p*p*C]`` as Siglip2ImageProcessor lays them out (row, column, channel)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch).transpose(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def reference(model, kind: str, images: np.ndarray, tokens: np.ndarray) -> dict:
    inputs = dict(input_ids=torch.from_numpy(tokens).long())
    if kind == "siglip":
        inputs["pixel_values"] = torch.from_numpy(images)
    else:
        patch = model.config.vision_config.patch_size
        flat = patches(images, patch)
        grid = images.shape[2] // patch
        inputs.update(pixel_values=torch.from_numpy(flat),
                      pixel_attention_mask=torch.ones(flat.shape[:2], dtype=torch.long),
                      spatial_shapes=torch.tensor([[grid, grid]] * len(images)))
    with torch.no_grad():
        out = model(**inputs)
    return {"image_embedding": out.image_embeds.numpy(), "text_embedding": out.text_embeds.numpy(),
            "logits": out.logits_per_image.numpy()}




CORPUS = ["a photo of a red circle", "two blue squares on a table", "the cat sat on the mat",
          "a small green star above a large yellow triangle", "an orange crescent", "a white ring",
          "photos of dogs and cats", "a drawing of a magenta diamond", "cyan crosses everywhere"]


def siglip_sentencepiece(folder, max_len: int):
    """A SigLIP-style SentencePiece model (unigram; pad 0, eos 1, unk 2, no bos; at most 60
    pieces) saved into ``folder`` by transformers' SiglipTokenizer (spiece.model and its
    tokenizer_config.json); returns that tokenizer."""
    import sentencepiece as spm  # noqa: PLC0415 - only the tokenizer tests train one
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_prefix=str(folder / "raw"), vocab_size=60,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1,
        hard_vocab_limit=False, minloglevel=2)
    hf = transformers.SiglipTokenizer(vocab_file=str(folder / "raw.model"), model_max_length=max_len)
    hf.save_pretrained(str(folder))
    return hf
