"""Runs a trained model on files: ``mmjax-predict SUBCOMMAND --workdir DIR ...`` (or ``python -m
train.predict ...`` from the repository root), with the run's recorded config (``--config`` and
``--config.FIELD=VALUE`` overrides allowed), or ``--weights hf_clip:DIR`` (``hf_siglip:DIR``) for a
published CLIP (SigLIP).

    zeroshot --images DIR_OR_GLOB --classes a,b,c [--template T]... [-k 5] [--out FILE.jsonl]
             (a classification run: its own classes, no --classes)
    retrieve --images DIR_OR_GLOB --query "a red circle" [--query ...] [-k 5] [--out FILE.jsonl]
    embed    --images DIR_OR_GLOB | --texts FILE  --out FILE.npy
    caption  --images DIR_OR_GLOB [--method greedy|beam|sample] [--beam_size 4]
             [--temperature 1.0] [--top_k 0] [--seed 0] [--out FILE.jsonl]
    generate --prompts "a red star" [--prompts ...] [--n 4] [--seed 0] [--psi 0.7] --out DIR
    explain  --images DIR_OR_GLOB --text "a red star" [--text ...] [--methods m1,m2] --out DIR

Words after the subcommand are more images (more prompts for ``generate``). Results are JSON
lines (to ``--out``, else standard output); ``embed`` writes L2-normalised float32 rows and, beside
them, ``FILE.rows.json`` with the row order; ``generate`` a PNG per sample and ``grid.png``;
``explain`` a PNG per image and text (the image and each method's relevance map over it) and
``explain.jsonl`` (each map's peak patch and the logit it explains). Each
prints a one-line summary with its output path (on standard error when the results go to
standard output). Unreadable image files are listed on standard error and skipped; bad input
ends with ``error: ...`` and exit code 2.
"""

import json
import os
import re
import sys

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from multimodal_jax import paths
from multimodal_jax.cli import common

SUBCOMMANDS = ("zeroshot", "retrieve", "embed", "caption", "generate", "explain")
EXPLAIN_METHODS = ("occlusion", "grad_input", "grad_rollout", "map_attention", "rollout")


def define_flags() -> dict:
    """The flags of every subcommand (absl flags are global; each subcommand reads its own)."""
    f = flags
    return dict(
        config=config_flags.DEFINE_config_file("config", None, "A config file (default: the "
                                               "run's record, WORKDIR/config.json).", lock_config=True),
        workdir=f.DEFINE_string("workdir", None, "A trained run's workdir."),
        weights=f.DEFINE_string("weights", None, "Published weights instead: hf_clip:DIR or hf_siglip:DIR."),
        images=f.DEFINE_multi_string("images", [], "Image files: a folder, a glob or a file; "
                                     "repeatable."),
        classes=f.DEFINE_list("classes", [], "zeroshot: class names, comma-separated."),
        template=f.DEFINE_multi_string("template", [], "zeroshot: a prompt template with {} "
                                       "(repeatable; default: the run's templates)."),
        query=f.DEFINE_multi_string("query", [], "retrieve: a text query (repeatable)."),
        texts=f.DEFINE_string("texts", None, "embed: a UTF-8 file of texts, one per line."),
        out=f.DEFINE_string("out", None, "Output: a .jsonl file (default standard output), the "
                            ".npy of embed, the folder of generate."),
        k=f.DEFINE_integer("k", 5, "zeroshot / retrieve: how many best classes or images."),
        batch_size=f.DEFINE_integer("batch_size", 64, "Images (or texts) per jitted call."),
        method=f.DEFINE_enum("method", None, ["greedy", "beam", "sample"], "caption: decoding "
                             "(default: the run's config.decoding)."),
        beam_size=f.DEFINE_integer("beam_size", None, "caption: beams."),
        temperature=f.DEFINE_float("temperature", None, "caption: sampling temperature."),
        top_k=f.DEFINE_integer("top_k", None, "caption: sample from the k likeliest tokens."),
        seed=f.DEFINE_integer("seed", 0, "caption (sampling), generate: the random seed."),
        prompts=f.DEFINE_multi_string("prompts", [], "generate: a caption (or a class name); "
                                      "repeatable."),
        n=f.DEFINE_integer("n", 4, "generate: samples per prompt."),
        psi=f.DEFINE_float("psi", None, "generate: truncation in [0, 1] toward each prompt's mean "
                           "style (1 = none; default: the run's config.evaluation.psi)."),
        text=f.DEFINE_multi_string("text", [], "explain: the text each image is explained "
                                   "against (repeatable)."),
        methods=f.DEFINE_list("methods", list(EXPLAIN_METHODS), "explain: relevance methods, "
                              f"comma-separated, among {', '.join(EXPLAIN_METHODS)}."),
    )


# ----------------------------------------------------------------------------- outputs


class Output:
    """JSON lines to ``path`` or standard output; the summary goes where the results do not."""

    def __init__(self, path):
        self.path = path
        if path and os.path.dirname(path):
            paths.as_path(os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
        self.file = paths.as_path(path).open("w", encoding="utf-8") if path else sys.stdout

    def line(self, value: dict) -> None:
        self.file.write(json.dumps(value, ensure_ascii=False) + "\n")

    def close(self, summary: str) -> None:
        if self.path:
            self.file.close()
            print(f"{summary} -> {self.path}", flush=True)
        else:
            self.file.flush()
            print(f"{summary} -> standard output", file=sys.stderr, flush=True)


def _read_images(run, items):
    """The readable images of ``items`` (listing the others on stderr); exit 2 if none."""
    from multimodal_jax.data import image_files  # noqa: PLC0415 - after the flags are parsed

    paths = image_files.expand(items)
    if not paths:
        common.fail(f"--images {' '.join(items) or '(none given)'} names no image files.")
    read = run.preprocessor.files(paths)
    for name, why in read.unreadable:
        print(f"unreadable: {name}: {why}", file=sys.stderr, flush=True)
    if not read.names:
        common.fail(f"None of the {len(paths)} image file(s) can be read (listed above).")
    return read


def _skipped(read) -> str:
    return f", {len(read.unreadable)} unreadable (skipped, listed above)" if read.unreadable else ""


# ----------------------------------------------------------------------------- subcommands


def zeroshot(run, f, items) -> None:
    """Zero-shot classes of a contrastive run; a classifier's own classes (its head)."""
    classes = [c.strip() for c in f["classes"].value if c.strip()]
    templates = f["template"].value or None
    if run.task == "classification" and (classes or templates):
        common.fail("This is a classifier: it predicts its own classes with its head; leave out "
                    "--classes and --template.")
    if run.task != "classification" and not classes:
        common.fail("zeroshot needs --classes a,b,c (the class names).")
    read = _read_images(run, items)
    results = run.classify(read, classes, templates, k=f["k"].value)
    out = Output(f["out"].value)
    for name, result in zip(read.names, results):
        out.line({"image": name, **result})
    what = (f"{len(classes)} classes x {len(templates or run.default_templates())} templates"
            if classes else f"the classifier's {len(run.class_names())} classes")
    out.close(f"zeroshot: {len(read.names)} images, {what}{_skipped(read)}")


def retrieve(run, f, items) -> None:
    queries = f["query"].value
    if not queries:
        common.fail('retrieve needs --query "TEXT" (repeatable).')
    read = _read_images(run, items)
    images = run.embed_images(read)
    texts = run.embed_texts(queries)
    scores = texts @ images.T
    out = Output(f["out"].value)
    for query, row in zip(queries, scores):
        best = np.argsort(-row, kind="stable")[:f["k"].value]
        out.line({"query": query, "results": [[read.names[i], round(float(row[i]), 6)] for i in best]})
    out.close(f"retrieve: {len(queries)} queries over {len(read.names)} images{_skipped(read)}")


def embed(run, f, items) -> None:
    path = f["out"].value
    if not path or not path.endswith(".npy"):
        common.fail("embed needs --out FILE.npy.")
    if bool(items) == bool(f["texts"].value):
        common.fail("embed needs either --images ... or --texts FILE (one text a line), not both.")
    if items:
        read = _read_images(run, items)
        rows, kind, values, extra = read.names, "image", run.embed_images(read), _skipped(read)
        skipped = [{"image": n, "reason": r} for n, r in read.unreadable]
    else:
        with open(f["texts"].value, encoding="utf-8") as file:
            rows = [line.rstrip("\n") for line in file if line.strip()]
        if not rows:
            common.fail(f"--texts {f['texts'].value} holds no text.")
        kind, values, extra, skipped = "text", run.embed_texts(rows), "", []
    if os.path.dirname(path):
        paths.as_path(os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
    with paths.as_path(path).open("wb") as file:
        np.save(file, values.astype(np.float32))
    beside = path[:-len(".npy")] + ".rows.json"
    with paths.as_path(beside).open("w", encoding="utf-8") as file:
        json.dump({"kind": kind, "rows": rows, "dim": int(values.shape[1]), "l2_normalised": True,
                   "source": run.source, "step": run.step, "unreadable": skipped}, file,
                  ensure_ascii=False, indent=1)
    print(f"embed: {len(rows)} {kind}s -> {path} ({values.shape[0]} x {values.shape[1]} float32; "
          f"row order in {beside}){extra}", flush=True)


def caption(run, f, items) -> None:
    read = _read_images(run, items)
    captions = run.caption(read, method=f["method"].value, beam_size=f["beam_size"].value,
                           temperature=f["temperature"].value, top_k=f["top_k"].value,
                           seed=f["seed"].value)
    out = Output(f["out"].value)
    for name, text in zip(read.names, captions):
        out.line({"image": name, "caption": text})
    method = f["method"].value or dict(run.config.get("decoding") or {}).get("method", "greedy")
    out.close(f"caption: {len(read.names)} images ({method} decoding){_skipped(read)}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "prompt"


def generate(run, f, items) -> None:
    from multimodal_jax.evaluation import figures  # noqa: PLC0415 - after the flags are parsed
    from multimodal_jax.evaluation import sample_grid  # noqa: PLC0415 - after the flags are parsed

    prompts, folder, n = list(f["prompts"].value) + list(items), f["out"].value, f["n"].value
    if not prompts:
        common.fail('generate needs --prompts "a red star" (repeatable).')
    if not folder:
        common.fail("generate needs --out DIR (a folder for the PNGs).")
    if n < 1:
        common.fail(f"--n={n}: the samples per prompt must be at least 1.")
    psi = f["psi"].value
    pixels = run.generate(prompts, n=n, seed=f["seed"].value, psi=psi)
    from PIL import Image  # noqa: PLC0415 - after the flags are parsed

    paths.as_path(folder).mkdir(parents=True, exist_ok=True)
    files = []
    for i, prompt in enumerate(prompts):
        for j in range(n):
            name = f"{i:03d}_{_slug(prompt)}_{j}.png"
            figures.save_png(Image.fromarray(pixels[i, j]), os.path.join(folder, name))
            files.append({"file": name, "prompt": prompt, "sample": j})
    with paths.as_path(os.path.join(folder, "samples.json")).open("w", encoding="utf-8") as file:
        json.dump({"seed": f["seed"].value, "psi": run.sampling_psi(psi), "source": run.source,
                   "step": run.step,
                   "samples": files}, file, ensure_ascii=False, indent=1)
    grid = os.path.join(folder, "grid.png")
    sample_grid.write(pixels.reshape((-1,) + pixels.shape[2:]),
                      [p for p in prompts for _ in range(n)], grid, columns=n)
    print(f"generate: {len(prompts)} prompts x {n} samples -> {folder} (grid {grid})", flush=True)


def explain(run, f, items) -> None:
    """Relevance maps of each image for each ``--text``: a PNG per pair and ``explain.jsonl``."""
    from multimodal_jax.evaluation import figures  # noqa: PLC0415 - after the flags are parsed

    texts, folder, methods = f["text"].value, f["out"].value, f["methods"].value
    if not texts:
        common.fail('explain needs --text "a red star" (repeatable).')
    if not folder:
        common.fail("explain needs --out DIR (a folder for the overlays).")
    unknown = [m for m in methods if m not in EXPLAIN_METHODS]
    if unknown or not methods:
        common.fail(f"--methods={','.join(methods)}: choose among {', '.join(EXPLAIN_METHODS)}.")
    read = _read_images(run, items)
    result = run.explain(read, texts, methods)
    from multimodal_jax.data import datasets  # noqa: PLC0415 - after the flags are parsed

    pixels = figures.to_uint8(read.pixels, *datasets.normalisation(run.config.data))
    paths.as_path(folder).mkdir(parents=True, exist_ok=True)
    out = Output(os.path.join(folder, "explain.jsonl"))
    for i, name in enumerate(read.names):
        stem = _slug(os.path.splitext(os.path.basename(name))[0])
        for j, text in enumerate(texts):
            file = f"{i:04d}_{stem}__{_slug(text)}.png"
            maps = {m: result[m][i, j][None] for m in methods}
            figures.relevance_grid(pixels[i][None], [f"{text}  (logit {result['logits'][i, j]:.2f})"],
                                   maps, os.path.join(folder, file))
            peaks = {m: [int(v) for v in np.unravel_index(int(np.argmax(maps[m][0])), maps[m][0].shape)]
                     for m in methods}
            out.line({"image": name, "text": text, "file": file,
                      "logit": round(float(result["logits"][i, j]), 6), "peak_patch": peaks})
    out.close(f"explain: {len(read.names)} images x {len(texts)} texts, methods "
              f"{', '.join(methods)}{_skipped(read)}, overlays in {folder}")


NEEDS = dict(zeroshot="classify", retrieve="embed_texts", embed="embed_images", caption="caption",
             generate="generate", explain="explain")
COMMANDS = dict(zeroshot=zeroshot, retrieve=retrieve, embed=embed, caption=caption,
                generate=generate, explain=explain)


# ----------------------------------------------------------------------------- main


def _load(f):
    from multimodal_jax import inference  # noqa: PLC0415 - heavy; after the flags are parsed

    workdir, weights = f["workdir"].value, f["weights"].value
    if bool(workdir) == bool(weights):
        common.fail("Give --workdir DIR (a trained run) or --weights hf_clip:DIR / hf_siglip:DIR "
                    "(a published CLIP / SigLIP), one of them.")
    if weights:
        return inference.load_weights(weights, batch_size=f["batch_size"].value)
    return inference.load(workdir, f["config"].value, batch_size=f["batch_size"].value)


def main(argv, f) -> None:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = f" (not {argv[1]!r})" if len(argv) > 1 else ""
        common.fail(f"Name a subcommand{given}: one of {', '.join(SUBCOMMANDS)}, e.g. "
                    "python -m train.predict zeroshot --workdir DIR --images DIR --classes a,b.")
    if f["batch_size"].value < 1:
        common.fail(f"--batch_size={f['batch_size'].value} must be at least 1.")
    common.keep_jax_off_absent_tpus()
    common.setup_process()
    command, items = COMMANDS[argv[1]], list(f["images"].value) + list(argv[2:])
    run = common.run_or_exit(lambda: _load(f))
    try:
        run.need(NEEDS[argv[1]])  # before any image is read
        command(run, f, items if command is not generate else list(argv[2:]))
    except (ValueError, FileNotFoundError) as error:
        common.fail(str(error))


def run() -> None:
    """The ``mmjax-predict`` console script."""
    f = define_flags()
    app.run(lambda argv: main(argv, f),
            flags_parser=lambda argv: common.parse_flags(common.with_recorded_config(argv)))
