"""Data: which dataset a config names and whether it is prepared (``datasets.py``), the TFDS ->
tf.data -> numpy streams (``pipeline.py``, a pure function of seed and step), the built-in
``captioned_shapes`` dataset (``shapes_*.py``), tokenizers (SentencePiece, bytes, CLIP BPE;
``vocab.py`` trains a run's own), augmentation and DiffAugment, host -> device input."""
