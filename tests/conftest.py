"""Test setup: 8 CPU devices for pmap / mesh tests, quiet TensorFlow, no GPU for tf.data, and
compilation made cheap for the whole suite and the processes it starts (``tests/env.py``):
one persistent XLA compilation cache (the same small programs are compiled by many tests;
``MMJAX_TEST_CACHE`` moves it), and XLA's CPU backend at optimisation level 0. The tests' models
are tiny: compiling them costs far more than running them, and every comparison a test makes
is between programs compiled alike (their numbers are checked against references with
tolerances, or against each other bitwise)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
    "MMJAX_TEST_CACHE", os.path.join(ROOT, ".pytest_cache", "jax_compilation_cache")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Bucket paths go through gcsfs for the whole suite: TensorFlow's GCS client cannot be pointed at
# the emulator (tests/gcs_emulator.py), and etils.epath decides its backend once per process, at
# the first gs:// path any test touches, which may come before the emulator fixture runs.
os.environ.setdefault("EPATH_USE_TF", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A data dir holding the built-in dataset's ``tiny`` config, prepared once per session."""
    from multimodal_jax.data import shapes_builder  # noqa: PLC0415 - after XLA_FLAGS above
    data_dir = tmp_path_factory.mktemp("tfds")
    shapes_builder.prepare_shapes("tiny", str(data_dir))
    return str(data_dir)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """A Cloud Storage emulator on a free localhost port, with its own storage folder and the
    bucket ``gs://bucket``; every client of this process and of the processes it starts is
    pointed at it (``tests/gcs_emulator.py`` says how) for the session, then it is stopped."""
    import fsspec  # noqa: PLC0415 - only the tests that use a bucket

    from tests import gcs_emulator  # noqa: PLC0415 - after XLA_FLAGS above
    emulator = gcs_emulator.Emulator(str(tmp_path_factory.mktemp("gcs"))).start()
    patch = pytest.MonkeyPatch()
    for name, value in gcs_emulator.environment(emulator.port).items():
        patch.setenv(name, value)
    fsspec.config.set_conf_env(fsspec.config.conf)  # (fsspec reads FSSPEC_* when imported)
    try:
        yield emulator
    finally:
        patch.undo()
        fsspec.config.conf.pop("gcs", None)
        emulator.stop()
