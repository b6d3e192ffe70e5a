"""Fingerprints of a run's files (``run_files.py``) and the workdir's tokenizer checked with
them (``data/vocab.py``): a damaged or replaced file is a clear error once checkpoints depend
on it, a missing tokenizer is trained again and used only if it matches."""

import json
import logging
import os

import ml_collections
import pytest

from multimodal_jax import run_files
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import vocab
from tests import tiny


def _with_checkpoint(workdir, step: int = 3) -> None:
    """A finished checkpoint step folder, as far as the workdir's listing can tell."""
    os.makedirs(os.path.join(workdir_lib.checkpoint_dir(str(workdir)), str(step)))


def test_write_records_then_read_checks(tmp_path):
    run_files.write(tmp_path, "config.json", b"{}")
    entry = json.loads((tmp_path / run_files.MANIFEST).read_text())["files"]["config.json"]
    assert entry["bytes"] == 2 and entry["sha256"] == run_files.fingerprint(b"{}")["sha256"]
    assert run_files.read(tmp_path, "config.json", "advice") == b"{}"
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # temporary files renamed


def test_a_changed_file_is_an_error_once_checkpoints_depend_on_it(tmp_path):
    run_files.write(tmp_path, "config.json", b'{"a": 1}')
    (tmp_path / "config.json").write_bytes(b'{"a": 2}')
    assert run_files.read(tmp_path, "config.json", "") == b'{"a": 2}'  # nothing trained yet
    run_files.adopt(tmp_path, "config.json", b'{"a": 2}')  # ... so it is recorded again
    _with_checkpoint(tmp_path)
    (tmp_path / "config.json").write_bytes(b'{"a": 3}')
    with pytest.raises(run_files.RunFileError) as error:
        run_files.read(tmp_path, "config.json", "Restore it from a backup.")
    message = str(error.value)
    assert "config.json differs from the one the checkpoints" in message and "(steps 3..3)" in message
    assert run_files.fingerprint(b'{"a": 2}')["sha256"][:16] in message  # what was recorded
    assert run_files.fingerprint(b'{"a": 3}')["sha256"][:16] in message  # what is there now
    assert message.endswith("Restore it from a backup.")


def test_a_file_without_a_record_is_adopted_as_it_is(tmp_path):
    """A workdir from before fingerprints: its files are recorded when first read."""
    (tmp_path / "config.json").write_bytes(b"{}")
    _with_checkpoint(tmp_path)
    data = run_files.read(tmp_path, "config.json", "")
    assert run_files.recorded(tmp_path, "config.json") is None
    run_files.adopt(tmp_path, "config.json", data)
    assert run_files.recorded(tmp_path, "config.json")["bytes"] == 2


def test_an_unreadable_record_is_an_error(tmp_path):
    (tmp_path / run_files.MANIFEST).write_text('{"files": ')
    with pytest.raises(run_files.RunFileError, match="cannot be read .* delete it"):
        run_files.recorded(tmp_path, "config.json")


# ----------------------------------------------------------------------------- the tokenizer


@pytest.fixture(scope="module")
def tokenizer_config(shapes_data_dir):
    config = ml_collections.ConfigDict({"data": tiny.tiny_shapes_config(shapes_data_dir).data,
                                        "tokenizer": tiny.tiny_shapes_config(shapes_data_dir).tokenizer})
    assert config.tokenizer.kind == "sentencepiece" and not config.tokenizer.path
    return config


@pytest.fixture(scope="module")
def trained(tokenizer_config, tmp_path_factory):
    """A workdir whose tokenizer was trained (and recorded) by ``ensure_tokenizer``."""
    workdir = tmp_path_factory.mktemp("trained")
    vocab.ensure_tokenizer(tokenizer_config, str(workdir))
    return workdir


def _copy(trained, tmp_path):
    for name in (workdir_lib.TOKENIZER, run_files.MANIFEST):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    _with_checkpoint(tmp_path)
    return tmp_path


def test_the_trained_tokenizer_is_recorded(trained):
    data = (trained / workdir_lib.TOKENIZER).read_bytes()
    assert run_files.recorded(trained, workdir_lib.TOKENIZER)["sha256"] == \
        run_files.fingerprint(data)["sha256"]


@pytest.mark.parametrize("damage", ["replaced", "truncated"])
def test_a_damaged_tokenizer_is_a_clear_error(tokenizer_config, trained, tmp_path, damage):
    workdir = _copy(trained, tmp_path)
    path = workdir / workdir_lib.TOKENIZER
    data = path.read_bytes()
    path.write_bytes(os.urandom(len(data)) if damage == "replaced" else data[: len(data) // 2])
    with pytest.raises(run_files.RunFileError) as error:
        vocab.ensure_tokenizer(tokenizer_config, str(workdir))
    message = str(error.value)
    assert f"{path} differs from the one the checkpoints" in message
    assert "delete it and rerun the same command" in message
    assert "would not match the checkpoints" in message  # never: "train one with train_sentencepiece"


def test_a_missing_tokenizer_is_trained_again_and_must_match(tokenizer_config, trained, tmp_path, caplog):
    workdir = _copy(trained, tmp_path)
    (workdir / workdir_lib.TOKENIZER).unlink()
    with caplog.at_level(logging.WARNING):
        tokenizer = vocab.ensure_tokenizer(tokenizer_config, str(workdir))
    assert "was missing: trained it again from the captions; it matches" in caplog.text
    assert (workdir / workdir_lib.TOKENIZER).read_bytes() == (trained / workdir_lib.TOKENIZER).read_bytes()
    assert tokenizer.vocab_size <= tokenizer_config.tokenizer.vocab_size

    manifest = json.loads((workdir / run_files.MANIFEST).read_text())  # as if the captions changed
    manifest["files"][workdir_lib.TOKENIZER]["sha256"] = "0" * 64
    (workdir / run_files.MANIFEST).write_text(json.dumps(manifest))
    (workdir / workdir_lib.TOKENIZER).unlink()
    with pytest.raises(run_files.RunFileError, match="Training it again from the captions gave another"):
        vocab.ensure_tokenizer(tokenizer_config, str(workdir))
    assert not (workdir / workdir_lib.TOKENIZER).exists()  # not written


def test_a_file_the_run_replaces_is_checked_against_the_old_or_new_bytes_meanwhile(tmp_path):
    """``replaces=True`` (the config record, rewritten at each start): no error for new bytes,
    and a process killed between the record and the file leaves the old bytes acceptable."""
    run_files.write(tmp_path, "config.json", b'{"a": 1}')
    _with_checkpoint(tmp_path)
    run_files.write(tmp_path, "config.json", b'{"a": 2}', replaces=True)
    assert run_files.read(tmp_path, "config.json", "") == b'{"a": 2}'
    assert "previous" not in run_files.recorded(tmp_path, "config.json")
    run_files.record(tmp_path, "config.json", b'{"a": 3}',  # killed before the rename
                     previous=run_files.recorded(tmp_path, "config.json"))
    assert run_files.read(tmp_path, "config.json", "") == b'{"a": 2}'
    (tmp_path / "config.json").write_bytes(b'{"a": 4}')  # neither: edited by hand
    with pytest.raises(run_files.RunFileError, match="config.json differs"):
        run_files.read(tmp_path, "config.json", "")


@pytest.fixture(scope="module")
def bpe_config(tokenizer_config):
    config = tokenizer_config.copy_and_resolve_references()
    config.tokenizer = ml_collections.ConfigDict({"kind": "clip_bpe", "path": "", "vocab_size": 560,
                                                  "max_len": tokenizer_config.tokenizer.max_len})
    return config


def test_a_trained_clip_bpe_vocabulary_is_recorded_and_checked(bpe_config, tmp_path, caplog):
    names = vocab.TRAINED_FILES["clip_bpe"]
    assert names == ("clip_bpe/vocab.json", "clip_bpe/merges.txt")
    trained = vocab.ensure_tokenizer(bpe_config, str(tmp_path))
    for name in names:
        assert run_files.recorded(tmp_path, name)["sha256"] == \
            run_files.fingerprint((tmp_path / name).read_bytes())["sha256"]
    _with_checkpoint(tmp_path)
    original = (tmp_path / names[1]).read_bytes()
    (tmp_path / names[1]).write_bytes(original[: len(original) // 2])  # merges cut short
    with pytest.raises(run_files.RunFileError) as error:
        vocab.ensure_tokenizer(bpe_config, str(tmp_path))
    assert f"{tmp_path / names[1]} differs from the one the checkpoints" in str(error.value)
    assert "Restore clip_bpe from a backup" in str(error.value) and "(train_clip_bpe)" in str(error.value)
    with pytest.raises(run_files.RunFileError):  # a reader (inference, predict) checks too
        vocab.trained_tokenizer(bpe_config, str(tmp_path))
    (tmp_path / names[1]).unlink()  # deleted, as the error says: trained again, it matches
    with caplog.at_level(logging.WARNING):
        again = vocab.ensure_tokenizer(bpe_config, str(tmp_path))
    assert "merges.txt was missing: trained it again from the captions; it matches" in caplog.text
    assert (tmp_path / names[1]).read_bytes() == original
    assert (again.encode(["a red circle"]) == trained.encode(["a red circle"])).all()
