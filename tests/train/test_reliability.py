"""What happens when a run goes wrong: divergence, a busy workdir, a corrupt checkpoint, a full
disk. Each stops with one clear message, exits non-zero and loses nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from kmri_jax.train import checkpointing
from kmri_jax.train.checkpointing import CheckpointError, Checkpointer, abstract_like
from kmri_jax.train.divergence import TrainingDivergedError
from kmri_jax.train.loop import train_and_evaluate
from kmri_jax.train.workdir_lock import WorkdirBusyError, WorkdirLock


def _steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


# -- divergence -------------------------------------------------------------------------------

def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(config, shared_store, tmp_path):
    config.data.store = str(shared_store)
    config.train.num_epochs, config.train.max_steps = 2, 8  # eval + checkpoint at step 8
    good = train_and_evaluate(config, tmp_path)
    assert np.isfinite(good["val_SSIM"])
    config.train.max_steps = 16
    config.train.learning_rate = 1e30
    with pytest.raises(TrainingDivergedError) as err:
        train_and_evaluate(config, tmp_path)
    message = str(err.value)
    assert "diverged" in message and "--config.train.learning_rate (now 1e+30)" in message
    assert "step 8" in message  # the checkpoint that stays
    assert _steps(tmp_path) == [8]
    with Checkpointer(tmp_path, best_metric="val_SSIM") as ckpt:
        assert ckpt.latest_step() == 8 and ckpt.best_step() == 8


def test_a_non_finite_metric_never_makes_a_checkpoint_best(tmp_path):
    import jax.numpy as jnp

    state = {"w": jnp.arange(4.0)}
    with Checkpointer(tmp_path, max_to_keep=1, best_metric="val_SSIM") as ckpt:
        ckpt.save(1, state, metrics={"val_SSIM": 0.5})
        ckpt.save(2, state, metrics={"val_SSIM": float("nan")})
        ckpt.save(3, state, metrics={"val_SSIM": float("inf")})
        assert ckpt.best_step() == 1
    assert _steps(tmp_path) == [1, 3]  # the best and the latest


# -- one run per workdir ----------------------------------------------------------------------

_HOLD = textwrap.dedent("""
    import sys, time
    from kmri_jax.train.workdir_lock import WorkdirLock
    with WorkdirLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_second_run_on_a_live_workdir_refuses_a_dead_one_does_not_block(config, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirBusyError) as err:
            train_and_evaluate(config, tmp_path)
        assert f"process {holder.pid} on host {os.uname().nodename}" in str(err.value)
        assert "--workdir" in str(err.value)
        assert not (tmp_path / "store").exists() and not (tmp_path / "checkpoints").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # as SLURM's time limit or kill -9 would
        holder.wait()
    with WorkdirLock(tmp_path):  # the lock died with its process
        assert f'"pid": {os.getpid()}' in (tmp_path / ".kmri-train.lock").read_text()


def test_a_lock_left_on_a_filesystem_without_flock_is_taken_over(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_flock(fd, op):
        if op & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("kmri_jax.train.workdir_lock.fcntl.flock", no_flock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock = tmp_path / ".kmri-train.lock"
    lock.write_text(f'{{"pid": {dead}, "host": "{os.uname().nodename}"}}')
    with WorkdirLock(tmp_path):
        pass
    lock.write_text(f'{{"pid": {os.getppid()}, "host": "{os.uname().nodename}"}}')
    with pytest.raises(WorkdirBusyError, match=f"process {os.getppid()}"):
        with WorkdirLock(tmp_path):
            pass


# -- a corrupt checkpoint: the message, nothing else -------------------------------------------

_RESTORE_CORRUPT = textwrap.dedent("""
    import sys
    import jax.numpy as jnp
    from kmri_jax.cli.common import run_command
    from kmri_jax.train.checkpointing import Checkpointer, abstract_like
    state = {f"w{i}": jnp.arange(64.0) + i for i in range(12)}

    def body():  # as the training loop restores
        with Checkpointer(sys.argv[1]) as ckpt:
            ckpt.restore(abstract_like(state))

    sys.exit(run_command("kmri-train", body))
""")


def test_a_corrupt_checkpoint_prints_one_message_and_no_traceback(tmp_path):
    import jax.numpy as jnp

    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, {f"w{i}": jnp.arange(64.0) + i for i in range(12)})
    for f in (tmp_path / "checkpoints" / "1" / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":  # the array data
            f.write_bytes(os.urandom(10))
    done = subprocess.run([sys.executable, "-c", _RESTORE_CORRUPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert re.match(r"kmri-train: error: cannot (restore|read) the checkpoint", lines[0])
    assert "TensorStore details" not in lines[0] and "tensorstore_spec" not in lines[0]
    assert "move that step directory away" in lines[0].lower()
    assert (tmp_path / "checkpoints" / "1").is_dir()


_LATE_UNRETRIEVED = textwrap.dedent("""
    import asyncio, gc, logging, sys
    from kmri_jax.train import checkpointing
    logging.basicConfig()  # as absl does: asyncio's records reach stderr
    if sys.argv[1] == "failed":
        checkpointing._HeldOutput().__enter__().failed(settle_s=0.0)
        sys.stderr = sys.__stderr__

    async def read():
        raise ValueError("OUT_OF_RANGE: the other read failed too")

    loop = asyncio.new_event_loop()
    task = loop.create_task(read())
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    del task
    gc.collect()  # the task's exception was never retrieved: asyncio logs it now
    print("end", file=sys.stderr)
""")


@pytest.mark.parametrize("after", ["failed", "no_failure"])
def test_tasks_collected_after_a_failed_read_print_nothing(after):
    """On a loaded machine the other reads' tasks can be collected after the settling time;
    after a failed read, asyncio's "never retrieved" records of them stay off stderr (and
    without a failure asyncio's own reporting is left alone: the check can fail)."""
    done = subprocess.run([sys.executable, "-c", _LATE_UNRETRIEVED, after],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if after == "failed":
        assert lines == ["end"], done.stderr[-3000:]
    else:
        assert "Task exception was never retrieved" in done.stderr


# -- a full disk -------------------------------------------------------------------------------

def test_a_full_disk_is_one_message_and_the_next_start_resumes(config, shared_store, tmp_path,
                                                               monkeypatch):
    """The free-space check before a save (the usual way a disk fills: checkpoint by
    checkpoint): the run stops at the save that does not fit, naming the last complete one."""
    config.data.store = str(shared_store)
    config.train.num_epochs, config.train.max_steps = 2, 16  # saves at steps 8 and 16
    real = checkpointing.shutil.disk_usage
    calls = []

    def filling_up(path):
        calls.append(path)
        usage = real(path)
        return usage._replace(free=usage.free if len(calls) == 1 else 300_000)

    monkeypatch.setattr(checkpointing.shutil, "disk_usage", filling_up)
    with pytest.raises(CheckpointError) as err:
        train_and_evaluate(config, tmp_path)
    message = str(err.value)
    assert "cannot write the checkpoint of step 16" in message
    assert "0.3 MB free" in message and "the last complete checkpoint is step 8" in message
    assert "--config.checkpoint.max_to_keep" in message and "--workdir" in message
    assert _steps(tmp_path) == [8]
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", real)  # space freed
    seen = []
    train_and_evaluate(config, tmp_path, on_step=lambda step, _: seen.append(step))
    assert seen == list(range(9, 17)) and _steps(tmp_path) == [8, 16]


def test_a_write_that_fails_midway_is_reported_and_its_partial_directory_removed(tmp_path,
                                                                                monkeypatch):
    """A disk filled by something else while a checkpoint is written: Orbax's writer fails
    (as TensorStore reports it); the one error names the step and the last complete one."""
    import jax.numpy as jnp

    state = {"w": jnp.arange(1000.0)}
    with Checkpointer(tmp_path, async_save=True) as ckpt:
        ckpt.save(1, state)
        ckpt.wait_until_finished()
        def failing(step, *args, **kwargs):  # what a write cut short leaves, and raises
            (ckpt.directory / f"{step}.orbax-checkpoint-tmp-123" / "state").mkdir(parents=True)
            raise ValueError('RESOURCE_EXHAUSTED: Error writing "w/0" in OCDBT database: '
                             'Failed writing: "x" [source locations=...]')

        monkeypatch.setattr(ckpt._manager, "save", failing)
        with pytest.raises(CheckpointError) as err:
            ckpt.save(2, state)
    message = str(err.value)
    assert "cannot write the checkpoint of step 2" in message and "the disk is full" in message
    assert "the last complete checkpoint is step 1" in message
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if "tmp" in p.name]
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1
        restored = ckpt.restore(abstract_like(state), step=1)
        np.testing.assert_array_equal(np.asarray(restored.state["w"]), np.arange(1000.0))


def _mount_tmpfs(path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_filesystem_during_training(shared_store, tmp_path):
    """The quickstart on a small filesystem, end to end through kmri-train (where the machine
    lets a test mount one: root in a container, as in CI). With an image U-Net instead of the
    quickstart's estimate U-Net: the same files on disk, without compiling and running the
    motion search at every evaluation (half the test's time)."""
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "1800k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = [sys.executable, "-m", "kmri_jax.cli.train",
               "--config", os.path.join(here, "..", "experiments", "quickstart.py"),
               "--workdir", str(disk / "run"), f"--config.data.store={shared_store}",
               "--config.data.ny=32", "--config.data.nx=48", "--config.data.phantom_subjects=6",
               "--config.data.phantom_slices=8", "--config.model.base_channels=4",
               "--config.model.kind=image_unet",
               "--config.train.batch_size=4", "--config.train.num_epochs=3",
               "--config.eval.every_epochs=1", "--config.eval.combinations=0",
               "--config.eval.baselines=input,oracle",
               # The session's compilation cache (tests/conftest.py).
               f"--config.runtime.compilation_cache={jax.config.jax_compilation_cache_dir}",
               "--config.runtime.cpu_devices=1",
               "--config.runtime.cpu_malloc=system"]  # compile-bound, like tiny_run's
        start = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stderr[-3000:]
        errors = [line for line in done.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert "cannot write the checkpoint of step" in errors[0]
        assert "the last complete checkpoint is step" in errors[0]
        assert time.time() - start < 600
        assert not [p for p in (disk / "run" / "checkpoints").iterdir() if "tmp" in p.name]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
