"""Evaluation: one ``base.Evaluator`` per task (``contrastive_eval.py``,
``classification_eval.py``, ``captioning_eval.py``, ``gan_eval.py``) over jitted functions run
on the mesh (``encode.py``), and the metrics they report: zero-shot, retrieval, linear probe,
caption metrics and attributes, generative metrics (Frechet distance, KID, precision /
recall), attribute classifiers; figures for the workdir's pictures."""
