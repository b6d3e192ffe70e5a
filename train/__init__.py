"""Command-line entry points: ``python -m train`` (training) and ``python -m train.evaluate``."""
