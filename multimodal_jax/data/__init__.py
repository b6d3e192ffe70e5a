"""Data: which dataset a config names and whether it is prepared (``datasets.py``), the TFDS ->
tf.data -> numpy streams (``pipeline.py``, a pure function of seed and step; ``records.py``
reads tfrecord and array_record, ``mixture.py`` mixes datasets), datasets from a user's files
(``prepare.py``, ``user_files.py``, ``stored_images.py``), a user's image files as the model's
input (``image_files.py``), the built-in ``captioned_shapes`` dataset (``shapes_*.py``, its
caption languages in ``shapes_languages/``), tokenizers (SentencePiece, bytes, CLIP BPE;
``vocab.py`` trains a run's own), augmentation and DiffAugment, host -> device input."""
