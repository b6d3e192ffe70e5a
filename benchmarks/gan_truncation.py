"""The truncation trade-off of a trained GAN: precision, recall and attribute accuracy against psi.

Run on a trained GAN workdir (figures in README.md, "Text-to-image GAN"):
  python -m benchmarks.gan_truncation --workdir workdirs/gan_shapes \
      --plot docs/gan_truncation.png --grids docs/gan_truncation

For each psi (default 0.5, 0.6, ..., 1.0) the run's own evaluation (``evaluation/gan_eval.py``,
its recorded config: the same examples, the same fixed noise, the same judges) scores the EMA
generator sampled through the one sampler (``tasks.adversarial.generate``) at that psi:
k-NN precision / recall in the evaluation encoder's image-embedding space, attribute accuracy
of the run's classifier, ``fd_clip`` and the CLIP score. Prints a table, draws the plot (and a
sample grid per psi with ``--grids``), and ends with one JSON line.
"""

from benchmarks import common

THREADS = common.set_threads()  # before jax / tf start their thread pools

import argparse  # noqa: E402
import os  # noqa: E402

SHOWN = (("precision_clip", "precision"), ("recall_clip", "recall"),
         ("attr_acc_shape", "shape acc."), ("attr_acc_color", "colour acc."),
         ("attr_acc_label", "shape + colour acc."))
PSIS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def sweep(workdir: str, psis, num_examples: int = 0, grids: str = "") -> list[dict]:
    """``[{"psi": psi, "gan/...": value, ...}, ...]``: the evaluation of ``workdir``'s newest
    checkpoint at each psi (``num_examples > 0``: its first examples only); a grid per psi to
    ``grids/psi_<psi>.png`` if ``grids`` is given."""
    import jax  # noqa: PLC0415 - after the thread settings

    from multimodal_jax import tasks  # noqa: PLC0415
    from multimodal_jax.parallel import mesh as mesh_lib  # noqa: PLC0415
    from multimodal_jax.pretrained import init_from  # noqa: PLC0415
    from multimodal_jax.runtime import prerequisites  # noqa: PLC0415
    from multimodal_jax.runtime import run_record  # noqa: PLC0415
    from multimodal_jax.tasks import truncation  # noqa: PLC0415

    psis = [truncation.check_psi(psi, "--psi") for psi in psis]
    config = run_record.load(workdir)
    if config.task != "adversarial":
        raise ValueError(f"{workdir!r} is a {config.task!r} run; the truncation sweep needs a GAN "
                         "(config.task='adversarial').")
    if num_examples:
        config.evaluation.num_examples = num_examples
    config = prerequisites.resolve(config, workdir)
    evaluator = tasks.get_task(config.task)(config, workdir).evaluator
    mesh = mesh_lib.mesh_from_config(config.parallel)
    g_params = jax.device_put(init_from.restore_params(workdir)["g_ema"], mesh_lib.replicated(mesh))
    if grids:
        os.makedirs(grids, exist_ok=True)
    rows = []
    for psi in psis:
        picture = os.path.join(grids, f"psi_{psi:g}.png") if grids else None
        rows.append({"psi": psi, **evaluator.metrics(g_params, mesh, psi, picture_path=picture)})
    return rows


def plot(rows: list[dict], path: str, title: str) -> None:
    """Precision, recall and attribute accuracies against psi, as a PNG line chart."""
    from multimodal_jax.evaluation import line_plot  # noqa: PLC0415

    shown = [(key, name) for key, name in SHOWN if f"gan/{key}" in rows[0]]
    line_plot.write([r["psi"] for r in rows], {name: [r[f"gan/{key}"] for r in rows]
                                               for key, name in shown},
                    path, x_label="truncation psi", title=title)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a trained GAN run's workdir")
    parser.add_argument("--psi", default=",".join(map(str, PSIS)),
                        help="comma-separated truncation values in [0, 1]")
    parser.add_argument("--num_examples", type=int, default=0,
                        help="evaluate the first N examples only (0: the run's own setting)")
    parser.add_argument("--plot", default="", help="the PNG chart to write")
    parser.add_argument("--grids", default="", help="a folder for one sample grid per psi")
    args = parser.parse_args(argv)
    try:
        psis = [float(p) for p in args.psi.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--psi={args.psi!r}: give comma-separated numbers in [0, 1], e.g. 0.5,0.7,1.")
    rows = sweep(args.workdir, psis, args.num_examples, args.grids)
    keys = ["fd_clip", "clip_score"] + [key for key, _ in SHOWN]
    keys = [k for k in keys if f"gan/{k}" in rows[0]]
    common.print_table(["psi"] + keys, [[f"{r['psi']:g}"] + [f"{r[f'gan/{k}']:.4f}" for k in keys]
                                        for r in rows])
    if args.plot:
        examples = int(rows[0]["gan/examples"])
        plot(rows, args.plot, f"Truncation trade-off ({examples} test captions)")
        print(f"plot: {args.plot}", flush=True)
    common.emit({"workdir": os.path.abspath(args.workdir), "threads": THREADS,
                 **{f"psi_{r['psi']:g}/{k}": float(r[f"gan/{k}"]) for r in rows for k in keys}})


if __name__ == "__main__":
    main()
