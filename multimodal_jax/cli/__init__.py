"""The command-line programs: ``mmjax-train``, ``mmjax-evaluate``, ``mmjax-prepare``,
``mmjax-predict``, ``mmjax-export`` and ``mmjax-compile`` (installed console scripts), also run
as ``python -m train``, ``python -m train.evaluate``, ``python -m train.prepare``, ... from the
repository root. Each parses its flags (and config), then calls one function of ``runtime/``
(``data/prepare.py`` for ``mmjax-prepare``)."""
