"""load_hf_siglip reproduces Hugging Face's SiglipModel and Siglip2Model (at fixed resolution) to
1e-5 in float32, and SiglipTokenizer gives transformers' ids.

Random-weight models of several architectures (widths, depths, heads, activations, LayerNorm
epsilons, patch and image sizes; all with the MAP head) are saved with ``save_pretrained`` into
tmp dirs, every tensor perturbed off its initial value (so that no mapping mistake hides behind
a zero or a one). A small SentencePiece model is trained offline for the tokenizer. No downloads.
"""

import numpy as np
import pytest

from multimodal_jax.data import siglip_tokenizer
from multimodal_jax.data import tokenizers
from multimodal_jax.pretrained import hf_siglip
from multimodal_jax.pretrained import load_hf_siglip
from multimodal_jax.pretrained import load_pretrained
from tests import test_convert_clip as clip_test

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = clip_test.TOL
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


@pytest.fixture(scope="module", params=sorted(ARCHS))
def hf_siglip_model(request, tmp_path_factory):
    """(its save_pretrained dir, the image size fed, inputs, reference outputs) for one architecture."""
    kind, text, vision, length, size = ARCHS[request.param]
    model = perturbed_siglip(kind, text, vision)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(str(path))
    native = vision.get("image_size") or int(vision["num_patches"] ** 0.5) * vision["patch_size"]
    images, tokens = random_inputs(length, size or native)
    return path, size, (images, tokens), reference(model, kind, images, tokens)


def test_hf_siglip_matches_pytorch(hf_siglip_model):
    path, size, (images, tokens), ref = hf_siglip_model
    model, variables = load_hf_siglip(str(path), image_size=size)
    assert model.logit_bias_init is not None and not model.project_image
    diffs = clip_test.max_diffs(model, variables, images, tokens, ref)
    assert max(diffs.values()) < TOL, diffs
    np.testing.assert_allclose(float(variables["params"]["logit_bias"]), -3.7, rtol=1e-6)


def test_load_pretrained_dispatches_on_the_model_type(hf_siglip_model):
    path, size, _, _ = hf_siglip_model
    if size is None:
        model, _ = load_pretrained(str(path))
        assert model.text_tower.pool == "last" and not model.text_tower.mask_pad


def test_position_resizing_weights_are_transformers_own():
    """The numpy filter equals transformers' resize of a one-hot table, growing and shrinking."""
    embeddings = transformers.models.siglip2.modeling_siglip2.Siglip2VisionEmbeddings
    for side, grid in ((4, 6), (5, 3), (4, 4)):
        table = torch.eye(side * side).reshape(side, side, side * side)
        theirs = embeddings.resize_positional_embeddings(
            table, torch.tensor([[grid, grid]]), max_length=grid * grid)[0].numpy()
        rows = hf_siglip.resize_weights(side, grid)
        ours = (rows[:, None, :, None] * rows[None, :, None, :]).reshape(grid * grid, side * side)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_siglip_without_its_map_head_is_refused(tmp_path):
    model = perturbed_siglip("siglip", ARCHS["siglip_tanh"][1],
                             {**ARCHS["siglip_tanh"][2], "vision_use_head": False})
    model.save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="vision_use_head=False"):
        load_hf_siglip(str(tmp_path))


# --- the tokenizer -------------------------------------------------------------------------------

CORPUS = ["a photo of a red circle", "two blue squares on a table", "the cat sat on the mat",
          "a small green star above a large yellow triangle", "an orange crescent", "a white ring",
          "photos of dogs and cats", "a drawing of a magenta diamond", "cyan crosses everywhere"]
TEXTS = ["A photo of a Red circle.", "  two   BLUE squares!!  ", "", "Hello, world: (cats) & dogs?",
         "a photo of a cat " * 6, "unknown ünïcödé 漢字 and émoji 🙂", "tab\tand\nnewline",
         "it's a 'quoted' \"word\"", "a_b-c/d", "▁leading underline"]


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


@pytest.fixture(scope="module")
def spiece_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spiece")
    return str(folder), siglip_sentencepiece(folder, 16)


@pytest.mark.parametrize("max_len", [16, 6])
def test_siglip_tokenizer_gives_transformers_ids(spiece_folder, max_len):
    folder, hf = spiece_folder
    ours = tokenizers.get_tokenizer(dict(kind="siglip", path=f"{folder}/spiece.model", max_len=max_len))
    theirs = hf(TEXTS, padding="max_length", truncation=True, max_length=max_len)["input_ids"]
    np.testing.assert_array_equal(ours.encode(TEXTS), np.asarray(theirs, np.int32))
    assert ours.pad_id == ours.eos_id == 1 and ours.bos_id is None
    import tensorflow as tf  # noqa: PLC0415
    np.testing.assert_array_equal(ours.tf_encode(tf.constant(TEXTS[0])).numpy(), theirs[0])
    for row in theirs:  # eos and pads dropped as transformers drops them (an unk stays visible)
        if hf.unk_token_id not in row:
            assert ours.decode(row) == hf.decode(row, skip_special_tokens=True)
    if max_len == 16:
        assert ours.decode(ours.encode(["a photo of a red circle"])[0]) == "a photo of a red circle"


def test_canonicalisation_is_siglips():
    assert siglip_tokenizer.canonicalize("  Hello,\tWORLD!  (x) ") == "hello world x"
    assert siglip_tokenizer.canonicalize("Keep Case", lower=False) == "Keep Case"


def test_special_tokens_the_model_file_lacks_are_refused(tmp_path):
    tokenizers.train_sentencepiece(CORPUS, str(tmp_path / "spiece.model"), 40)
    (tmp_path / "tokenizer_config.json").write_text('{"eos_token": {"content": "[END]"}}')
    with pytest.raises(ValueError, match="no piece '\\[END\\]' \\(its eos_token\\)"):
        siglip_tokenizer.SiglipTokenizer(str(tmp_path))
