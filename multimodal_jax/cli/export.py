"""Exports a trained run to the formats others load: ``mmjax-export --workdir DIR --format hf
--out OUT`` (or ``python -m train.export ...`` from the repository root), with the run's recorded
config (``--config`` and ``--config.FIELD=VALUE`` overrides allowed).

    --format hf         a contrastive run -> a transformers CLIPModel folder (config.json,
                        model.safetensors, vocab.json + merges.txt, preprocessor_config.json);
                        a classification run -> a ViTForImageClassification folder
    --format open_clip  a contrastive run -> open_clip_model.safetensors (open_clip's state-dict
                        names) + open_clip_config.json

A model the target cannot express (MAP pooling, a SentencePiece tokenizer for CLIPTokenizer,
...) ends with ``error: ...`` naming each difference and the field to change, exit code 2.
``--out gs://BUCKET/...`` writes into a bucket (through ``multimodal_jax.paths``); a bucket that
cannot be written is an ``error: ...`` (exit code 2) before the run is loaded. Prints one line:
what was written where.
"""

import tempfile

from absl import app
from absl import flags
from ml_collections import config_flags

from multimodal_jax import paths
from multimodal_jax.cli import common

FORMATS = ("hf", "open_clip")


def export(run, fmt: str, out: str) -> list[str]:
    """Writes ``run`` (an ``inference.Run``) in format ``fmt`` into ``out`` (a local folder, or a
    bucket's ``gs://...``); its files. The writers need a local path (safetensors writes one), so
    a bucket's export is written into a local temporary folder, then copied in file by file."""
    if not paths.is_url(out):
        return _export_to_folder(run, fmt, out)
    with tempfile.TemporaryDirectory(prefix="mmjax-export-") as staging:
        _export_to_folder(run, fmt, staging)
        return paths.copy_local_tree(staging, out)


def _export_to_folder(run, fmt: str, out: str) -> list[str]:
    """``export`` into the local folder ``out``."""
    from multimodal_jax.pretrained import hf_export  # noqa: PLC0415 - after the flags are parsed
    from multimodal_jax.pretrained import open_clip_export  # noqa: PLC0415

    mean, std = run.normalisation
    image = dict(image_size=run.image_size, mean=mean, std=std)
    if run.task == "contrastive" and fmt == "hf":
        return hf_export.export_clip(run.model, run.params, out, tokenizer=run.tokenizer,
                                     tokenizer_kind=run.config.tokenizer.kind,
                                     max_len=run.config.tokenizer.max_len, **image)
    if run.task == "contrastive":
        return open_clip_export.export(run.model, run.params, out, **image)
    if run.task == "classification" and fmt == "hf":
        return hf_export.export_vit(run.model, run.params, out, class_names=run.class_names(), **image)
    what = ("--format open_clip holds contrastive models; export a classifier with --format hf"
            if run.task == "classification" else
            f"a {run.task} run has no counterpart in {FORMATS}: contrastive runs export to "
            "CLIPModel and open_clip, classification runs to ViTForImageClassification")
    raise ValueError(f"{run.source}: {what}.")


def run() -> None:
    """The ``mmjax-export`` console script."""
    config = config_flags.DEFINE_config_file("config", None, "A config file (default: the run's "
                                             "record, WORKDIR/config.json).", lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
    fmt = flags.DEFINE_enum("format", None, list(FORMATS), "What to write.")
    out = flags.DEFINE_string("out", None, "The folder to write (local, or gs://BUCKET/...).")
    flags.mark_flags_as_required(["workdir", "format", "out"])

    def main(argv):
        if len(argv) > 1:
            common.fail(f"Unexpected arguments {argv[1:]}: export takes only flags.")
        if paths.is_url(out.value):  # a missing bucket is found before the run is loaded
            try:
                paths.probe_writable(out.value, "export folder", "--out")
            except ValueError as error:
                common.fail(str(error))
        common.keep_jax_off_absent_tpus()
        common.setup_process()
        from multimodal_jax import inference  # noqa: PLC0415 - heavy; after the flags are parsed

        loaded = common.run_or_exit(lambda: inference.load(workdir.value, config.value))
        try:
            files = export(loaded, fmt.value, out.value)
        except (ValueError, FileNotFoundError) as error:
            common.fail(str(error))
        print(f"export: {loaded.task} run at step {loaded.step} -> {out.value} ({fmt.value}: "
              f"{', '.join(files)})", flush=True)

    app.run(main, flags_parser=lambda argv: common.parse_flags(common.with_recorded_config(argv)))
