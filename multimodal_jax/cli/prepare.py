"""Makes a TFDS dataset from your own files: ``mmjax-prepare --name NAME --data_dir DIR`` and one
of ``--captions FILE``, ``--image_folder DIR`` or ``--webdataset PATTERN`` (or ``python -m
train.prepare ...`` from the repository root). Then train on it:
``python -m train --config configs/clip_shapes.py --config.data.name=NAME
--config.data.data_dir=DIR ...``.

Prints what was written and the problems met (each listed in ``DIR/NAME/prepare_report.json``),
then one JSON object as the last line. Exit codes: 0 written (with any problems listed), 2 bad
command line or nothing usable (one paragraph on stderr), and with ``--strict`` 2 when any
input was left out (the dataset is written all the same).
"""

from absl import app
from absl import flags
from absl import logging as absl_logging

from multimodal_jax.cli import common
from multimodal_jax.data import datasets
from multimodal_jax.data import prepare
from multimodal_jax.data import user_files

SHOWN_PROBLEMS = 10


def _define_flags() -> dict:
    return dict(
        name=flags.DEFINE_string("name", None, "Dataset name (lower case, digits, '_')."),
        data_dir=flags.DEFINE_string("data_dir", None, "TFDS data dir to write it into."),
        captions=flags.DEFINE_string(
            "captions", None, "CSV with the header image,caption[,label], or JSONL with those "
            "keys; image paths relative to the file's folder or --images_root."),
        images_root=flags.DEFINE_string("images_root", None, "Folder the captions file's paths "
                                        "are relative to (paths outside it are refused)."),
        image_folder=flags.DEFINE_string("image_folder", None, "Folder of class folders "
                                         "(ROOT/CLASS/IMAGE): label and caption per class."),
        templates=flags.DEFINE_multi_string(
            "template", ["a photo of a {}."], "Caption of an --image_folder image, {} = its "
            "class; repeat it for several captions per image."),
        webdataset=flags.DEFINE_string("webdataset", None, "Tar shards of KEY.jpg|png + KEY.txt, "
                                       "e.g. 'shards/train-{000..009}.tar' or a glob."),
        test_fraction=flags.DEFINE_float("test_fraction", 0.1, "Share of each class put in the "
                                         "test split (deterministic); 0: train only."),
        resize=flags.DEFINE_integer("resize", 0, "Scale images down so their shorter side is "
                                    "this many pixels (0: keep their size)."),
        file_format=flags.DEFINE_enum("file_format", "tfrecord", list(prepare.FILE_FORMATS),
                                      "How TFDS stores the examples."),
        overwrite=flags.DEFINE_bool("overwrite", False, "Replace a dataset of this name."),
        strict=flags.DEFINE_bool("strict", False, "Exit with 2 when any input was left out."),
    )


def _listing(values: dict) -> tuple[user_files.Listing, str]:
    """The one layout named on the command line, listed."""
    given = [k for k in ("captions", "image_folder", "webdataset") if values[k]]
    if len(given) != 1:
        raise ValueError("Give exactly one of --captions FILE, --image_folder DIR or "
                         f"--webdataset PATTERN (got {['--' + g for g in given] or 'none'}).")
    if values["images_root"] and not values["captions"]:
        raise ValueError("--images_root is for --captions files only.")
    if values["captions"]:
        return (user_files.captions_file(values["captions"], values["images_root"]),
                f"captions file {values['captions']}")
    if values["image_folder"]:
        for template in values["templates"]:
            if "{}" not in template:
                raise ValueError(f"--template={template!r} has no '{{}}' for the class name.")
        return (user_files.image_folder(values["image_folder"], values["templates"]),
                f"image folder {values['image_folder']}")
    return user_files.webdataset(values["webdataset"]), f"webdataset {values['webdataset']}"


def _main(holders: dict) -> None:
    values = {k: holder.value for k, holder in holders.items()}
    if not values["name"] or not values["data_dir"]:
        common.fail("--name and --data_dir are required: mmjax-prepare --name NAME --data_dir DIR "
                    "--image_folder FOLDER (or --captions FILE, --webdataset PATTERN).")
    absl_logging.set_verbosity(absl_logging.WARNING)  # no JAX here: no devices are started
    datasets.hide_accelerators_from_tf()
    report = common.run_or_exit(lambda: _prepare(values))
    written = ", ".join(f"{split} {n}" for split, n in sorted(report["examples"].items()))
    print(f"Prepared {report['name']!r} in {report['data_dir']}: {written} examples"
          + (f", {len(report['classes'])} classes" if report["classes"] else "") + ".")
    if report["reencoded"]:
        print(f"{len(report['reencoded'])} images re-encoded or resized (listed in the report).")
    for reason, count in report["ignored"].items():
        print(f"Ignored: {count} {reason}.")
    problems = report["problems"]
    print(f"{len(problems)} inputs left out" + (":" if problems else "."))
    for problem in problems[:SHOWN_PROBLEMS]:
        print(f"  {problem['item']}: {problem['problem']}")
    if len(problems) > SHOWN_PROBLEMS:
        print(f"  ... and {len(problems) - SHOWN_PROBLEMS} more")
    print(f"Report: {report['report']}")
    common.print_metrics({"name": report["name"], "data_dir": report["data_dir"],
                          **{f"examples/{k}": v for k, v in report["examples"].items()},
                          "problems": len(problems), "report": report["report"]})
    if problems and values["strict"]:
        common.fail(f"--strict: {len(problems)} inputs were left out (see {report['report']}).")


def _prepare(values: dict) -> dict:
    """Lists the input and writes the dataset; bad input as ``ConfigError``-like exits."""
    try:
        listing, source = _listing(values)
        return prepare.prepare(values["name"], values["data_dir"], listing, source,
                               values["test_fraction"], values["resize"], values["file_format"],
                               values["overwrite"])
    except ValueError as error:
        raise common.ConfigError(str(error)) from None


def run() -> None:
    """The ``mmjax-prepare`` console script."""
    holders = _define_flags()
    app.run(lambda argv: _main(holders), flags_parser=common.parse_flags)
