"""A published Hugging Face SigLIP or SigLIP 2 (``save_pretrained`` folder: config.json,
model.safetensors, spiece.model) in the contrastive task with the sigmoid loss: zero-shot and
retrieval evaluation of the weights as they are, or fine-tuning both towers from them. The
folder is the config argument; the model fields, tokenizer, image size and pixel normalisation
are read from it (``multimodal_jax.pretrained.hf_siglip.config_blocks``).

Zero-shot evaluation of the weights (step 0; nothing is trained, the workdir only gets pictures):
  python -m train.evaluate --config configs/siglip_pretrained.py:/weights/siglip-base-patch16-224 \
      --workdir workdirs/siglip_b16_eval
Fine-tune both towers on the built-in dataset (or --config.data.name=... of a prepared dataset):
  python -m train --config configs/siglip_pretrained.py:/weights/siglip-base-patch16-224 \
      --workdir workdirs/siglip_b16_ft --config.total_steps=500
LiT-style (image tower locked): add --config.lock_image_tower=True.

SigLIP's text tower reads texts padded to its full length (64 tokens for the published models)
with its end-of-text id, lower-cased and without punctuation, as ``SiglipTokenizer`` makes them.
SigLIP 2 is read at its position table's own resolution (``Siglip2Model`` at fixed resolution);
its tokenizer is Gemma's, which is not read here: give a SigLIP 2 folder a ``spiece.model`` of
that vocabulary, or set ``--config.tokenizer.path``. Not measured here: no published weights
can be downloaded on this machine (the tests check the path on random-weight models, against
PyTorch).
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.pretrained import hf_siglip


def get_config(weights: str = "") -> ml_collections.ConfigDict:
    if not weights:
        raise ValueError("configs/siglip_pretrained.py needs the weights folder as its argument: "
                         "--config configs/siglip_pretrained.py:/path/to/hf_siglip_folder")
    path = weights.split(":", 1)[1] if weights.startswith("hf_siglip:") else weights
    blocks = hf_siglip.config_blocks(path)
    config = clip_shapes.get_config()
    config.loss = "sigmoid"  # SigLIP's logit bias belongs to the sigmoid loss
    config.init_from = f"hf_siglip:{path}"
    config.init_towers = "all"  # both towers, the text head, temperature and bias
    config.lock_image_tower = False
    config.batch_size = 64
    config.total_steps = 1  # a fine-tuning run sets its own (--config.total_steps=N)
    config.model = ml_collections.ConfigDict(blocks["model"])
    config.tokenizer = ml_collections.ConfigDict(blocks["tokenizer"])
    config.data.update(image_size=blocks["image_size"], mean=blocks["mean"], std=blocks["std"])
    config.optim.update(lr=1e-5, warmup_steps=50, weight_decay=0.1)
    config.evaluation.batch_size = 64
    config.evaluation.templates = "a photo of a {}.,a {}.,a picture of a {}."  # a str field: a,b,c
    return config
