"""The multi-process path, run for real: a 2-task SLURM step faked on this machine.

Two processes (one CPU device each) join through ``jax.distributed`` exactly as under
``srun`` with one task per node (tools/slurm/train_multinode.sbatch): SLURM's variables, a
coordinator on localhost, Gloo collectives. They train and evaluate; one of them gets SIGTERM
(a preemption) and both stop at the next synced step with a checkpoint in their shared
workdir; a second step resumes from it. The reference is one process with two CPU devices
(the ``loop_runs`` fixture): the global batches, keys and parameters are the same, so the
losses and metrics must agree.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile

import numpy as np

from tiny_run import clean_env, loop_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_task_step(workdir, *, cache: str, sigterm_at: int = 0) -> list[dict]:
    """Runs the tiny loop (12 steps) as tasks 0 and 1 of a fake ``srun`` step, one task per
    node; task 1 gets SIGTERM after step ``sigterm_at`` (0: never)."""
    port = _free_port()
    # Output to files, not pipes: while this waits for task 0, task 1 must never block on a
    # full pipe, or task 0 would wait for it at the next collective (a deadlock).
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in (0, 1)]
    procs = [
        subprocess.Popen(
            loop_command(workdir, cpu_devices=0, max_steps=12, cache=cache,
                         sigterm_at=sigterm_at),
            env=clean_env(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
                          SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="1(x2)",
                          SLURM_PROCID=str(rank), SLURM_LOCALID="0",
                          JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                          JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"),
            stdout=out, stderr=err, text=True)
        for rank, (out, err) in zip((0, 1), logs)
    ]
    try:
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p in procs:  # a task left hanging would hold a core for the rest of the suite
            if p.poll() is None:
                p.kill()
                p.wait()
    outs = []
    for p, (out, err) in zip(procs, logs):
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close(), err.close()
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def test_two_processes_preempted_and_resumed_train_as_one(loop_runs, tmp_path):
    ref = loop_runs["two"]
    assert (ref["processes"], ref["devices"]) == (1, 2) and len(ref["losses"]) == 12
    shared = tmp_path / "two-processes"
    # SIGTERM to task 1 after step 2: both tasks stop at the next synced step (every 10).
    # Its own compilation cache (the resumed step reads the first's): loop_runs' cache is
    # checked for no new entries by test_runtime.py, maybe at the same time on another worker.
    cache = str(tmp_path / "xla-cache")
    first = _two_task_step(shared, cache=cache, sigterm_at=2)
    resumed = _two_task_step(shared, cache=cache)
    for part in first + resumed:
        assert (part["processes"], part["devices"]) == (2, 2)
    assert [p["process"] for p in first] == [0, 1]
    for a, b in (first, resumed):  # Both processes see the same global values.
        assert a["losses"] == b["losses"] and a["ssim"] == b["ssim"]
    assert len(first[0]["losses"]) == 10 and len(resumed[0]["losses"]) == 2
    steps = sorted(int(p.name) for p in (shared / "checkpoints").iterdir() if p.name.isdigit())
    assert 10 in steps and steps[-1] == 12  # The preemption checkpoint, then the end.
    np.testing.assert_allclose(first[0]["losses"] + resumed[0]["losses"], ref["losses"],
                               rtol=1e-5)
    np.testing.assert_allclose([resumed[0]["ssim"], resumed[0]["loss"]],
                               [ref["ssim"], ref["loss"]], rtol=1e-5)
    header, *rows = (shared / "history.csv").read_text().splitlines()
    assert len(rows) == 1  # One row per epoch (the last evaluation, step 12, is in epoch 1).
    row = dict(zip(header.split(","), rows[0].split(",")))
    np.testing.assert_allclose(float(row["val_SSIM"]), resumed[0]["ssim"], rtol=1e-6)
