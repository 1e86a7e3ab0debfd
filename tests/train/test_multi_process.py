"""The multi-process path, run for real: a 2-task SLURM step faked on this machine.

Two processes (one CPU device each) join through ``jax.distributed`` exactly as under
``srun`` with one task per node (tools/slurm/train_multinode.sbatch): SLURM's variables, a
coordinator on localhost, Gloo collectives. They train, evaluate and checkpoint into one
shared workdir, stop, and resume from it. The reference is one process with two CPU devices
(the ``loop_runs`` fixture): the global batches, keys and parameters are the same, so the
losses and metrics must agree.
"""

from __future__ import annotations

import json
import socket
import subprocess

import numpy as np

from tiny_run import clean_env, loop_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_task_step(workdir, *, max_steps: int, cache: str) -> list[dict]:
    """Runs the tiny loop as tasks 0 and 1 of a fake ``srun`` step, one task per node."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            loop_command(workdir, cpu_devices=0, max_steps=max_steps, cache=cache),
            env=clean_env(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
                          SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="1(x2)",
                          SLURM_PROCID=str(rank), SLURM_LOCALID="0",
                          JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                          JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def test_two_processes_train_checkpoint_resume_as_one(loop_runs, tmp_path):
    ref = loop_runs["two"]
    assert (ref["processes"], ref["devices"]) == (1, 2)
    shared = tmp_path / "two-processes"
    first = _two_task_step(shared, max_steps=3, cache=loop_runs["cache"])  # Stops at step 3...
    resumed = _two_task_step(shared, max_steps=6, cache=loop_runs["cache"])  # ...resumes to 6.
    for part in first + resumed:
        assert (part["processes"], part["devices"]) == (2, 2)
    assert [p["process"] for p in first] == [0, 1]
    for a, b in (first, resumed):  # Both processes see the same global values.
        assert a["losses"] == b["losses"] and a["ssim"] == b["ssim"]
    np.testing.assert_allclose(first[0]["losses"] + resumed[0]["losses"], ref["losses"],
                               rtol=1e-5)
    np.testing.assert_allclose([resumed[0]["ssim"], resumed[0]["loss"]],
                               [ref["ssim"], ref["loss"]], rtol=1e-5)
    steps = sorted(int(p.name) for p in (shared / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6 and 3 in steps
    history = (shared / "history.csv").read_text().splitlines()
    assert len(history) == len(set(history))  # Written by one process only.
