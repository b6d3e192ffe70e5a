"""The command-line programs: ``mmjax-train`` and ``mmjax-evaluate`` (installed console
scripts), also run as ``python -m train`` and ``python -m train.evaluate`` from the repository
root. Each parses its flags and config, then calls one function of ``runtime/``."""
