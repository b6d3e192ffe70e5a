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
from tests import hf_clip_reference as clip_test
from tests.hf_siglip_reference import ARCHS
from tests.hf_siglip_reference import CORPUS
from tests.hf_siglip_reference import TOL
from tests.hf_siglip_reference import perturbed_siglip
from tests.hf_siglip_reference import random_inputs
from tests.hf_siglip_reference import reference
from tests.hf_siglip_reference import siglip_sentencepiece

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

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

TEXTS = ["A photo of a Red circle.", "  two   BLUE squares!!  ", "", "Hello, world: (cats) & dogs?",
         "a photo of a cat " * 6, "unknown ünïcödé 漢字 and émoji 🙂", "tab\tand\nnewline",
         "it's a 'quoted' \"word\"", "a_b-c/d", "▁leading underline"]


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
