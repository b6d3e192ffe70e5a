"""Gives the run its tokenizer: the configured one, or one trained (offline, deterministically)
on the training captions and kept in the workdir when no path is given: a SentencePiece model
(``tokenizer.model``) or a CLIP BPE vocabulary (``clip_bpe/vocab.json`` and ``merges.txt``).

The files a run trains are fingerprinted when written and checked whenever they are read
(``run_files.py``): a damaged or replaced one is an error, never a silent change of the run. A
missing one is trained again and used only if it matches its recorded fingerprint."""

import logging
import math
import os

import jax
import ml_collections
import tensorflow_datasets as tfds
from etils import epath
from jax.experimental import multihost_utils

from multimodal_jax import run_files
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import mixture
from multimodal_jax.data import pipeline
from multimodal_jax.data import records
from multimodal_jax.data import tokenizers

log = logging.getLogger(__name__)

MAX_TRAINING_CAPTIONS = 100_000


def training_captions(data_cfg: ml_collections.ConfigDict, limit: int = MAX_TRAINING_CAPTIONS) -> list[str]:
    """Up to ``limit`` examples' captions of the train split, in file order, images left
    undecoded; with ``data.mixture``, each dataset's share of ``limit`` by its weight. Empty
    captions (a language that withholds an example) are skipped."""
    if not data_cfg.text_key:
        raise ValueError(
            f"Cannot train a tokenizer for {data_cfg.name!r}: it has no text_key. Set "
            "tokenizer.path to a .model file, or tokenizer.kind='bytes'.")
    datasets.hide_accelerators_from_tf()
    texts = []
    for part, weight in mixture.components(data_cfg):
        builder = datasets.builder(part)
        ds = records.read(builder, part.train_split, {part.image_key: tfds.decode.SkipDecoding()})
        for example in pipeline.numpy_iterator(ds.take(math.ceil(limit * weight)),
                                               [(part, [part.train_split])]):
            value = example
            for key in part.text_key.split("/"):
                value = value[key]
            values = value if hasattr(value, "__len__") and not isinstance(value, bytes) else [value]
            texts.extend(v.decode("utf-8") for v in values if v)
    return texts


# Tokenizers a run trains on its captions when config.tokenizer.path is empty: where they go,
# and their files (relative to the workdir, as ``run_files`` records them).
TRAINED_IN_WORKDIR = {"sentencepiece": workdir_lib.TOKENIZER, "clip_bpe": workdir_lib.CLIP_BPE}
TRAINED_FILES = {"sentencepiece": (workdir_lib.TOKENIZER,),
                 "clip_bpe": (f"{workdir_lib.CLIP_BPE}/vocab.json", f"{workdir_lib.CLIP_BPE}/merges.txt")}


def tokenizer_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """``config.tokenizer`` with its ``path``: the configured one, or the file the run trains
    into ``workdir`` (SentencePiece, CLIP BPE) when none is given."""
    tok_cfg = config.tokenizer
    if tok_cfg.get("path") or tok_cfg.kind not in TRAINED_IN_WORKDIR:
        return tok_cfg
    path = os.path.join(workdir, TRAINED_IN_WORKDIR[tok_cfg.kind])
    return ml_collections.ConfigDict({**tok_cfg.to_dict(), "path": path})


def _restore_advice(kind: str) -> str:
    """How to get back the tokenizer a workdir's checkpoints were trained with."""
    return (f"Restore {TRAINED_IN_WORKDIR[kind]} from a backup of the workdir, or delete it and "
            "rerun the same command: the run then trains it again from the same captions and uses "
            "it only if it matches the recorded fingerprint. A tokenizer trained anew by hand "
            f"({'train_sentencepiece' if kind == 'sentencepiece' else 'train_clip_bpe'}) would not "
            "match the checkpoints.")


def _trained_files(kind: str, config: ml_collections.ConfigDict) -> dict[str, bytes]:
    """The files of a ``kind`` tokenizer trained on ``config``'s captions, by their names in
    the workdir."""
    texts = training_captions(config.data)
    if kind == "sentencepiece":
        return {workdir_lib.TOKENIZER: tokenizers.sentencepiece_model(
            texts, config.tokenizer.vocab_size,
            byte_fallback=config.tokenizer.get("byte_fallback", False))}
    from multimodal_jax.data import clip_bpe  # noqa: PLC0415 - it imports tokenizers

    files = clip_bpe.clip_bpe_files(texts, config.tokenizer.vocab_size or 49408)
    return {f"{workdir_lib.CLIP_BPE}/{name}": data for name, data in files.items()}


def _train_into(kind: str, config: ml_collections.ConfigDict, workdir: str, missing: list[str]) -> None:
    """Trains the ``kind`` tokenizer of ``config`` and writes its ``missing`` files into
    ``workdir`` (fingerprinted); a file recorded before (it went missing) must match its record."""
    before = {name: run_files.recorded(workdir, name) for name in missing}
    trained = _trained_files(kind, config)
    advice = ("Training it again from the captions gave another one (the dataset or the tokenizer "
              "trainer changed), so it is not written. Restore the original "
              f"{TRAINED_IN_WORKDIR[kind]} from a backup of the workdir, or train in a new --workdir.")
    for name in missing:
        run_files.write(workdir, name, trained[name], advice)
        if before[name] is not None:
            same = before[name]["sha256"] == run_files.fingerprint(trained[name])["sha256"]
            log.warning("%s was missing: trained it again from the captions; %s.",
                        epath.Path(workdir) / name,
                        "it matches the fingerprint recorded when it was first written" if same else
                        "it differs from the one recorded before, which no checkpoint was trained with")


def _checked_tokenizer(tok_cfg: ml_collections.ConfigDict, workdir: str, adopt: bool):
    """The workdir's trained tokenizer, built from bytes checked against their record
    (``run_files.RunFileError`` when they changed); ``adopt``: record files not recorded yet."""
    kind, advice = tok_cfg.kind, _restore_advice(tok_cfg.kind)
    files = {name: run_files.read(workdir, name, advice) for name in TRAINED_FILES[kind]}
    try:
        if kind == "sentencepiece":
            tokenizer = tokenizers.SentencePieceTokenizer(
                tok_cfg.path, tok_cfg.get("max_len"), proto=files[workdir_lib.TOKENIZER])
        else:
            from multimodal_jax.data import clip_bpe  # noqa: PLC0415 - it imports tokenizers

            tokenizer = clip_bpe.ClipBpeTokenizer(
                tok_cfg.path, tok_cfg.get("max_len"),
                files={name.rsplit("/", 1)[-1]: data for name, data in files.items()})
    except (ValueError, KeyError, UnicodeDecodeError) as error:  # unreadable, with no record saying otherwise
        raise run_files.RunFileError(f"{tok_cfg.path} cannot be read as a {kind} tokenizer: it is "
                                     f"damaged ({error}). {advice}") from error
    if adopt:
        for name, data in files.items():
            run_files.adopt(workdir, name, data)
    tokenizers.check_vocab_size(tok_cfg, tokenizer)
    return tokenizer


def ensure_tokenizer(config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
    """The tokenizer of ``config.tokenizer``; trains one into ``workdir`` first when a
    SentencePiece or CLIP BPE tokenizer has no path (process 0 trains, the others wait for it),
    and checks its files against their recorded fingerprints (``run_files.RunFileError`` when
    they changed). ``shapes_only``: its ``TokenizerShape``, no file trained or read."""
    if shapes_only:
        return tokenizers.shape_of(config.tokenizer)
    tok_cfg = tokenizer_config(config, workdir)
    if tok_cfg is config.tokenizer:  # a configured file (or none): not the run's own
        return tokenizers.get_tokenizer(tok_cfg)
    first = jax.process_index() == 0  # the process that trains and records
    missing = [name for name in TRAINED_FILES[tok_cfg.kind]
               if not (epath.Path(workdir) / name).exists()]
    if first and missing:
        _train_into(tok_cfg.kind, config, workdir, missing)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("tokenizer trained")
    return _checked_tokenizer(tok_cfg, workdir, adopt=first)


def trained_tokenizer(config: ml_collections.ConfigDict, workdir: str):
    """The tokenizer a run in ``workdir`` was trained with, checked against its recorded
    fingerprints; never trains one (a missing file is a ``FileNotFoundError`` saying so)."""
    tok_cfg = tokenizer_config(config, workdir)
    if tok_cfg is config.tokenizer:
        return tokenizers.get_tokenizer(tok_cfg)
    for name in TRAINED_FILES[tok_cfg.kind]:
        if not (epath.Path(workdir) / name).exists():
            raise FileNotFoundError(f"The tokenizer {tok_cfg.path!r} of the run in {workdir!r} "
                                    "does not exist: was the run trained (its first step writes "
                                    "it)?")
    return _checked_tokenizer(tok_cfg, workdir, adopt=False)
