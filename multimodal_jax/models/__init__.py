"""Pure Flax (linen) modules, no training logic: the ViT (``vit.py``), the text Transformer
(``text.py``), the two-tower contrastive model (``two_tower.py``), the captioner's decoder and
its searches (``decoder.py``, ``captioner.py``, ``decoding.py``), the GAN (``gan.py``), shared
blocks (``layers.py``, ``posemb.py``); ``factory.py`` builds them from config blocks and
checks those blocks. Each module can be imported on its own by other JAX code."""
