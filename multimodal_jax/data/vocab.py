"""Gives the run its tokenizer: the configured one, or a SentencePiece model trained (offline,
deterministically) on the training captions and kept in the workdir when no path is given.

The workdir's model is fingerprinted when it is trained and checked whenever it is read
(``run_files.py``): a damaged or replaced one is an error, never a silent change of the run. A
missing one is trained again and used only if it matches its recorded fingerprint."""

import logging

import jax
import ml_collections
import tensorflow_datasets as tfds
from etils import epath
from jax.experimental import multihost_utils

from multimodal_jax import run_files
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.data import datasets
from multimodal_jax.data import pipeline
from multimodal_jax.data import tokenizers

log = logging.getLogger(__name__)

MAX_TRAINING_CAPTIONS = 100_000


def training_captions(data_cfg: ml_collections.ConfigDict, limit: int = MAX_TRAINING_CAPTIONS) -> list[str]:
    """Up to ``limit`` captions of the train split, in file order, images left undecoded."""
    if not data_cfg.text_key:
        raise ValueError(
            f"Cannot train a SentencePiece model for {data_cfg.name!r}: it has no text_key. Set "
            "tokenizer.path to a .model file, or tokenizer.kind='bytes'.")
    datasets.hide_accelerators_from_tf()
    builder = tfds.builder(data_cfg.name, data_dir=data_cfg.data_dir or None)
    ds = builder.as_dataset(split=data_cfg.train_split, shuffle_files=False,
                            decoders={data_cfg.image_key: tfds.decode.SkipDecoding()})
    texts = []
    for example in pipeline.numpy_iterator(ds.take(limit), data_cfg, [data_cfg.train_split]):
        value = example
        for part in data_cfg.text_key.split("/"):
            value = value[part]
        values = value if hasattr(value, "__len__") and not isinstance(value, bytes) else [value]
        texts.extend(v.decode("utf-8") for v in values)
    return texts


def _restore_advice(workdir) -> str:
    """How to get back the tokenizer a workdir's checkpoints were trained with."""
    return (f"Restore {workdir_lib.TOKENIZER} from a backup of the workdir, or delete it and rerun "
            "the same command: the run then trains it again from the same captions and uses it "
            "only if it matches the recorded fingerprint. A tokenizer trained anew by hand "
            "(train_sentencepiece) would not match the checkpoints.")


def _train_into(config: ml_collections.ConfigDict, workdir) -> None:
    """Trains the SentencePiece model of ``config`` into ``workdir`` (fingerprinted); when one
    was recorded before (the file went missing), the new one must match it."""
    before = run_files.recorded(workdir, workdir_lib.TOKENIZER)
    data = tokenizers.sentencepiece_model(training_captions(config.data), config.tokenizer.vocab_size)
    advice = ("Training it again from the captions gave another model (the dataset or the "
              "sentencepiece version changed), so it is not written. Restore the original "
              f"{workdir_lib.TOKENIZER} from a backup of the workdir, or train in a new --workdir.")
    run_files.write(workdir, workdir_lib.TOKENIZER, data, advice)
    if before is not None:
        same = before["sha256"] == run_files.fingerprint(data)["sha256"]
        log.warning("%s was missing: trained it again from the captions; %s.",
                    epath.Path(workdir) / workdir_lib.TOKENIZER,
                    "it matches the fingerprint recorded when it was first written" if same else
                    "it differs from the one recorded before, which no checkpoint was trained with")


def ensure_tokenizer(config: ml_collections.ConfigDict, workdir: str, shapes_only: bool = False):
    """The tokenizer of ``config.tokenizer``; trains ``workdir/tokenizer.model`` first when a
    SentencePiece tokenizer has no path (process 0 trains, the others wait for it), and checks
    it against its recorded fingerprint (``run_files.RunFileError`` when it changed).
    ``shapes_only``: its ``TokenizerShape``, no file trained or read."""
    if shapes_only:
        return tokenizers.shape_of(config.tokenizer)
    tok_cfg = config.tokenizer
    if tok_cfg.kind != "sentencepiece" or tok_cfg.path:
        return tokenizers.get_tokenizer(tok_cfg)
    path = epath.Path(workdir) / workdir_lib.TOKENIZER
    first = jax.process_index() == 0  # the process that trains and records
    if first and not path.exists():
        _train_into(config, workdir)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("tokenizer trained")
    advice = _restore_advice(workdir)
    proto = run_files.read(workdir, workdir_lib.TOKENIZER, advice)
    try:
        tokenizer = tokenizers.SentencePieceTokenizer(str(path), tok_cfg.get("max_len"), proto=proto)
    except ValueError as error:  # unreadable, in a workdir whose record does not say otherwise
        raise run_files.RunFileError(f"{path} cannot be read as a SentencePiece model: it is "
                                     f"damaged. {advice}") from error
    if first:
        run_files.adopt(workdir, workdir_lib.TOKENIZER, proto)
    tokenizers.check_vocab_size(tok_cfg, tokenizer)
    return tokenizer
