"""Multi-host setup: ``jax.distributed.initialize`` from a job description (the command
line's ``--coordinator_address``, ``--num_processes``, ``--process_id``), or found by JAX itself
on TPU VMs (pod slices: the same command on every worker), Slurm (``srun``) and Open MPI
(``mpirun``); nothing for one process. It must run before anything touches the devices.

On CPU the cross-process collectives go through gloo (what the 2-process tests use).
"""

import glob
import importlib.util
import logging
import os
from typing import Mapping
from typing import Optional

import jax

from multimodal_jax.runtime.config_checks import ConfigError

log = logging.getLogger(__name__)
TPU_ENV = ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES", "MEGASCALE_COORDINATOR_ADDRESS")


def _on_tpu_vm() -> bool:
    """A Cloud TPU VM: libtpu installed and TPU chips attached."""
    return (importlib.util.find_spec("libtpu") is not None
            and bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")))


def detected_cluster(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """``"slurm"``, ``"open_mpi"`` or ``"tpu"`` where JAX can find the job's processes itself
    (a Slurm or MPI job of several tasks, a TPU VM or pod slice); None otherwise."""
    if "SLURM_JOB_ID" in environ and int(environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if int(environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "open_mpi"
    if any(name in environ for name in TPU_ENV) or _on_tpu_vm():
        return "tpu"
    return None


def _check(coordinator_address, num_processes, process_id) -> None:
    given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
             "--process_id": process_id}
    missing = [name for name, value in given.items() if value is None]
    if missing and len(missing) < 3 and num_processes != 1:
        raise ConfigError(f"Multi-host flags are incomplete: {', '.join(missing)} missing. Give all "
                          "three (the same --coordinator_address=HOST:PORT and --num_processes on "
                          "every process, --process_id 0..N-1 on each), or none to auto-detect.")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num_processes={num_processes} must be at least 1.")
    if process_id is not None and num_processes and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process_id={process_id} must be in 0..{num_processes - 1}.")


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Joins this process to the job; returns whether ``jax.distributed`` was initialised.
    All three arguments: that job. None: auto-detection (``detected_cluster``).
    ``num_processes=1``: one process, nothing to do."""
    _check(coordinator_address, num_processes, process_id)
    if num_processes == 1:
        return False
    if num_processes is None:
        cluster = detected_cluster(environ)
        if cluster is None:
            return False
        log.info("Initialising jax.distributed from the %s environment.", cluster)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    log.info("Process %d of %d; %d local and %d global devices.", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return True
