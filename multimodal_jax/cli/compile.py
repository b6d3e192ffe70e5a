"""Compiles a config's train step for a TPU topology on this (CPU) machine, without running it:
``mmjax-compile --config configs/clip_vit_b16.py --topology v5e:4x4`` (or ``python -m
train.compile ...`` from the repository root). Reads no dataset, tokenizer file or weights.

Prints a table, then one JSON object as the last line: memory per chip against its HBM, the
compiler's and the analytic FLOPs, bytes, collectives, a roofline step time and the MFU it
bounds. A config that does not fit exits 2, naming the levers. ``--fit`` finds, for each remat
policy, the largest batch per chip that fits; ``--num_slices N`` compiles N slices of the
topology joined over the data-centre network (data parallel across them, FSDP inside each).
"""

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from multimodal_jax.cli import common
from multimodal_jax.runtime import pod_compile


def _tera(value) -> str:
    return "n/a" if value is None else f"{value / 1e12:.3f}"


def _capacity(report: dict) -> str:
    """The chip's usable GiB, and its HBM where JAX may not fill it (GPUs)."""
    usable, hbm = report["usable_gib"], report["hbm_gib"]
    return f"{usable:.2f}" if usable == hbm else f"{usable:.2f} usable ({hbm:.2f} HBM)"


def _table(report: dict) -> list[tuple[str, str]]:
    memory = report["memory_gib"]
    rows = [("topology", f"{report['topology']} x {report['num_slices']} slice(s): "
                         f"{report['chips']} chips of {report['device_kind']}, mesh {report['mesh']}"),
            ("batch per chip", f"{report['batch_per_chip']:g}"),
            ("memory per chip", f"{memory['total']:.2f} GiB of {_capacity(report)} "
                                f"(arguments {memory['arguments']:.2f}, temporaries "
                                f"{memory['temporaries']:.2f}, outputs {memory['outputs']:.2f}, "
                                f"aliased {memory['aliased']:.2f})"),
            ("TFLOP per chip", f"{_tera(report['flops_per_chip'])} (analytic "
                               f"{_tera(report['analytic_flops_per_chip'])})"),
            ("TB accessed per chip", _tera(report["bytes_accessed_per_chip"])),
            ("collectives", ", ".join(f"{op} {c['count']} ({c['bytes'] / 2 ** 20:.1f} MiB)"
                                      for op, c in report["collectives"].items() if c["count"])),
            ("roofline step", "n/a (no byte count)" if report["mfu_bound"] is None else
             f"{report['roofline_step_s'] * 1e3:.1f} ms, MFU <= {100 * report['mfu_bound']:.1f}%"),
            ("compile", f"{report['compile_s']:.0f} s")]
    rows += [(f"eval {name}", f"{e['memory_gib']:.2f} GiB") for name, e in report.get("eval", {}).items()]
    return rows


def _print(rows) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def run() -> None:
    """The ``mmjax-compile`` console script."""
    config = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                             lock_config=True)
    topology = flags.DEFINE_string("topology", None, "TPU topology as JAX names it, e.g. v5e:4x4.")
    num_slices = flags.DEFINE_integer("num_slices", 1, "Slices of the topology (multi-slice).")
    fit = flags.DEFINE_bool("fit", False, "Largest batch per chip that fits, per remat policy.")
    policies = flags.DEFINE_list("fit_policies", list(pod_compile.REMAT_POLICIES),
                                 "The remat policies --fit tries.")
    granularity = flags.DEFINE_integer("fit_granularity", 1, "--fit's batches per chip are "
                                       "multiples of this (e.g. what a chunked loss divides).")
    flags.mark_flags_as_required(["config", "topology"])

    def main(argv):
        del argv
        jax.config.update("jax_platforms", "cpu")  # the TPUs are compiled for, not used
        common.setup_process()
        if fit.value:
            table = common.run_or_exit(lambda: pod_compile.fit(
                config.value, topology.value, num_slices.value, tuple(policies.value),
                granularity.value))
            _print([(f"remat {policy}", f"largest batch per chip {batch}")
                    for policy, batch in table.items()])
            common.print_metrics({"topology": topology.value, "largest_batch_per_chip": table})
            return
        report = common.run_or_exit(lambda: pod_compile.compile_config(
            config.value, topology.value, num_slices.value))
        _print(_table(report))
        common.print_metrics(report)

    app.run(main, flags_parser=common.parse_flags)
