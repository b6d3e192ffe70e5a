"""What ``pip install`` puts into site-packages: every package of ``multimodal_jax`` (the
configs as ``multimodal_jax.configs``), the console scripts, and no generic top-level
name such as ``train`` or ``configs``."""

import os
import tomllib

import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_every_package_is_installed_and_nothing_generic():
    listed = set(_project()["tool"]["setuptools"]["packages"])
    found = {"multimodal_jax"} | {f"multimodal_jax.{p}" for p in
                                  setuptools.find_packages(os.path.join(ROOT, "multimodal_jax"))}
    assert found | {"multimodal_jax.configs"} == listed
    assert all(name.startswith("multimodal_jax") for name in listed)
    assert _project()["tool"]["setuptools"]["package-dir"] == {"multimodal_jax.configs": "configs"}


def test_console_scripts_name_the_cli_entry_points():
    scripts = _project()["project"]["scripts"]
    assert scripts == {"mmjax-train": "multimodal_jax.cli.train:run",
                       "mmjax-evaluate": "multimodal_jax.cli.evaluate:run",
                       "mmjax-compile": "multimodal_jax.cli.compile:run",
                       "mmjax-prepare": "multimodal_jax.cli.prepare:run",
                       "mmjax-predict": "multimodal_jax.cli.predict:run",
                       "mmjax-export": "multimodal_jax.cli.export:run"}
    import importlib  # noqa: PLC0415
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function))
