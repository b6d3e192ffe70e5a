"""A published Hugging Face CLIP (``save_pretrained`` folder: config.json, model.safetensors,
vocab.json + merges.txt) in the contrastive task: zero-shot and retrieval evaluation of the
weights as they are, or fine-tuning both towers from them. The folder is the config argument;
the model fields, tokenizer, image size and pixel normalisation are read from it.

Zero-shot evaluation of the weights (step 0; nothing is trained, the workdir only gets pictures):
  python -m train.evaluate --config configs/clip_pretrained.py:/weights/clip-vit-base-patch32 \
      --workdir workdirs/clip_b32_eval
Fine-tune both towers on the built-in dataset (or --config.data.name=... of a prepared dataset):
  python -m train --config configs/clip_pretrained.py:/weights/clip-vit-base-patch32 \
      --workdir workdirs/clip_b32_ft --config.total_steps=500
LiT-style (image tower locked): add --config.lock_image_tower=True.

The built-in dataset's 32 px images are resized to the checkpoint's image size (224 for
OpenAI's models), so a CPU evaluates a ViT-B/32 on its test split in minutes. Not measured
here: no published weights can be downloaded on this machine (the tests check the path on
random-weight Hugging Face models, against PyTorch).
"""

import ml_collections

from multimodal_jax.configs import clip_shapes
from multimodal_jax.pretrained import hf_clip


def get_config(weights: str = "") -> ml_collections.ConfigDict:
    if not weights:
        raise ValueError("configs/clip_pretrained.py needs the weights folder as its argument: "
                         "--config configs/clip_pretrained.py:/path/to/hf_clip_folder")
    path = weights.split(":", 1)[1] if weights.startswith("hf_clip:") else weights
    blocks = hf_clip.config_blocks(path)
    config = clip_shapes.get_config()
    config.init_from = f"hf_clip:{path}"
    config.init_towers = "all"  # both towers, projections and temperature
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
