"""The tiny training configuration the loop, data-parallel and task tests share:
phantom data at 32x48, a 4-channel U-Net, batch 4, a few steps; and a way to run the loop on
it in a fresh process (device counts and jax.distributed are fixed when JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from kmri_jax.config import base_config

TESTS = os.path.dirname(os.path.abspath(__file__))


def tiny_config():
    c = base_config()
    c.data.ny, c.data.nx = 32, 48
    c.data.phantom_subjects = 6
    c.data.phantom_slices = 8
    c.model.base_channels = 4
    c.train.batch_size = 4
    c.train.num_epochs = 1
    c.train.max_steps = 6
    c.train.log_every_steps = 1
    c.eval.batch_size = 8
    c.eval.combinations = "0,80"
    c.eval.num_images = 2
    c.checkpoint.async_save = False
    c.runtime.compilation_cache = ""  # Tests never write to ~/.cache.
    # Tiny runs are compile-bound, and the kept allocator compiles ~30% slower (one arena for
    # XLA's compiler threads, docs/profile.md); tests/train/test_runtime.py tests it.
    c.runtime.cpu_malloc = "system"
    c.eval.baselines = ""  # one program less per run; the loop's baselines: test_experiments
    return c


def config_with(changes: dict):
    """``base_config()`` with ``{"section.key": value}`` changes applied."""
    c = base_config()
    for key, value in changes.items():
        section, name = key.split(".")
        c[section][name] = value
    return c


_RUN_LOOP = textwrap.dedent("""
    import json, os, signal, sys
    import jax
    sys.path.insert(0, sys.argv[1])
    from tiny_run import tiny_config
    from kmri_jax.train.loop import train_and_evaluate
    c = tiny_config()
    c.runtime.cpu_devices, c.train.max_steps = int(sys.argv[3]), int(sys.argv[4])
    c.runtime.compilation_cache, c.train.num_epochs = sys.argv[5], 2
    sigterm_at = int(sys.argv[6])
    losses = []

    def on_step(step, metrics):
        losses.append(float(metrics["loss"]))
        if step == sigterm_at and jax.process_index() == jax.process_count() - 1:
            os.kill(os.getpid(), signal.SIGTERM)  # As SLURM would, to this process alone.

    summary = train_and_evaluate(c, sys.argv[2], on_step=on_step)
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                      "devices": jax.device_count(), "losses": losses,
                      "ssim": summary.get("val_SSIM"), "loss": summary.get("val_loss")}))
""")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without device-count, cache and SLURM settings, CPU only, plus extra.

    ``XLA_FLAGS`` keeps only the suite's optimisation level (tests/conftest.py), followed by
    any ``XLA_FLAGS`` in ``extra``."""
    drop = ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "JAX_COMPILATION_CACHE_DIR", "KMRI_DISTRIBUTED")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SLURM_")}
    env["JAX_PLATFORMS"] = "cpu"
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if f.startswith("--xla_backend_optimization_level")]
    flags = " ".join([*kept, extra.pop("XLA_FLAGS", "")]).strip()
    if flags:
        env["XLA_FLAGS"] = flags
    env.update(extra)
    return env


def loop_command(workdir, *, cpu_devices: int, max_steps: int, cache: str = "",
                 sigterm_at: int = 0) -> list[str]:
    """The command that trains tiny_config() (2 epochs of 8 steps) for ``max_steps`` into
    ``workdir`` and prints one JSON line: process, processes, devices, the loss of every step,
    the last evaluation's ssim and loss (None if none ran). ``sigterm_at``: after that step
    the last process sends itself SIGTERM."""
    return [sys.executable, "-c", _RUN_LOOP, TESTS, str(workdir), str(cpu_devices),
            str(max_steps), cache, str(sigterm_at)]


def run_loop(workdir, *, cpu_devices: int, max_steps: int, cache: str = "",
             **env: str) -> dict:
    """Runs :func:`loop_command` in a fresh process and returns its JSON line."""
    done = subprocess.run(loop_command(workdir, cpu_devices=cpu_devices, max_steps=max_steps,
                                       cache=cache), env=clean_env(**env),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
