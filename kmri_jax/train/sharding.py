"""Data parallelism: one mesh axis ``'data'`` over every device of every process.

The batch is split along its leading axis over ``'data'``; the train state is replicated. The
same code runs on 1 CPU, 8 GPUs of one node, or several nodes (one process per node, each
seeing all its GPUs; :func:`initialize_distributed` joins the processes first). No ``pmap``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kmri_jax.config import ConfigValueError

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "initialize_distributed",
    "local_batch_size",
    "make_mesh",
    "replicate",
    "replicated",
    "shard_batch",
]

log = logging.getLogger(__name__)

DATA_AXIS = "data"
_ENV_SWITCH = "KMRI_DISTRIBUTED"


def initialize_distributed(*, force: bool | None = None) -> bool:
    """Joins the processes of a multi-process job; call once, before anything touches JAX.

    Initialises ``jax.distributed`` (which reads SLURM's variables) when ``force`` is True,
    when ``KMRI_DISTRIBUTED=1``, or when running as one of several tasks of an ``srun`` step
    (``SLURM_STEP_NUM_TASKS`` > 1). ``KMRI_DISTRIBUTED=0`` or ``force=False`` turns it off.
    With one task per node, every process is given all the GPUs of its node (JAX's SLURM
    default would give each process a single GPU).

    Returns:
      Whether this run is multi-process (``jax.distributed`` initialised).
    """
    if force is None:
        switch = os.environ.get(_ENV_SWITCH, "").strip()
        if switch in ("0", "1"):
            force = switch == "1"
    step_tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if force is None:
        force = step_tasks > 1
        in_step = "SLURM_STEP_NUM_TASKS" in os.environ
        if not in_step and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
            log.warning(
                "SLURM allocation has %s tasks but this is not an srun step: running as a "
                "single process. Launch with `srun` to use every node.",
                os.environ["SLURM_NTASKS"],
            )
    if not force:
        log.info("single process: jax.distributed not initialised")
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs: dict[str, Any] = {}
    local_ids = _node_gpu_ids() if _one_task_per_node() else None
    if local_ids is not None:
        kwargs["local_device_ids"] = local_ids
    jax.distributed.initialize(**kwargs)
    log.info(
        "jax.distributed initialised: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def _one_task_per_node() -> bool:
    """True when SLURM runs one task per node in this step (the layout our sbatch files use)."""
    tasks = os.environ.get("SLURM_STEP_TASKS_PER_NODE") or os.environ.get("SLURM_TASKS_PER_NODE")
    if not tasks:
        return False
    # Formats: "1", "1(x4)", "2,1(x3)".
    return all(part.split("(")[0] == "1" for part in tasks.split(","))


def _node_gpu_ids() -> list[int] | None:
    """Ordinals of the GPUs this process sees (CUDA_VISIBLE_DEVICES or SLURM_GPUS_ON_NODE)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        return list(range(len([v for v in visible.split(",") if v.strip()])))
    count = os.environ.get("SLURM_GPUS_ON_NODE", "").strip()
    if count.isdigit() and int(count) > 0:
        return list(range(int(count)))
    return None


def make_mesh(*, axis_type: Literal["auto", "explicit"] = "auto") -> Mesh:
    """A 1-D mesh over all devices of all processes, axis ``'data'``.

    ``axis_type="auto"`` (default) lets ``jit`` propagate shardings from the inputs (the
    classic data-parallel setup); ``"explicit"`` makes shardings part of the array types.
    """
    kind = jax.sharding.AxisType.Auto if axis_type == "auto" else jax.sharding.AxisType.Explicit
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(kind,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``'data'``, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (for the train state)."""
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Puts a pytree (e.g. the initial train state) on every device of the mesh.

    On several processes every process must pass the same values.
    """
    return jax.device_put(tree, replicated(mesh))


def local_batch_size(global_batch_size: int, *, mesh: Mesh | None = None,
                     key: str = "train.batch_size") -> int:
    """The batch each process loads: ``global / process_count``.

    Raises:
      ConfigValueError: the global batch (config key ``key``) does not split evenly over the
        devices.
    """
    devices = mesh.size if mesh is not None else jax.device_count()
    if global_batch_size % devices:
        raise ConfigValueError(
            f"{key}={global_batch_size} is not divisible by the {devices} devices; "
            f"use a multiple of {devices} (e.g. --config.{key}="
            f"{max(devices, global_batch_size // devices * devices)})."
        )
    return global_batch_size // jax.process_count()


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's share of a batch -> global arrays split over ``'data'``.

    Args:
      batch: dict of numpy arrays with a leading batch axis ``[B_local, ...]`` (the data
        contract), ``B_local`` divisible by this process's device count.
      mesh: from :func:`make_mesh`.

    Returns:
      dict of ``jax.Array`` ``[B_local * process_count, ...]`` with :func:`batch_sharding`.
    """
    sharding = batch_sharding(mesh)
    local_devices = len(mesh.local_devices)
    out: dict[str, jax.Array] = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] % local_devices:
            raise ValueError(
                f"batch[{name!r}] has shape {value.shape}: its leading (batch) axis must be "
                f"divisible by the {local_devices} local devices."
            )
        if jax.process_count() == 1:
            out[name] = jax.device_put(value, sharding)
        else:
            out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out
