"""What the benchmark scripts share: the machine they ran on, timing and spread of repeats,
XLA's cost and memory analyses, and the train step as the training loop builds it."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def parse_config(text: str) -> tuple[int, int, int]:
    """``"424x736:32"`` -> (ny, nx, batch)."""
    try:
        size, batch = text.split(":")
        ny, nx = (int(v) for v in size.lower().split("x"))
        return ny, nx, int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW:B (e.g. 256x256:8), got {text!r}") from None


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max of a list of samples/s figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def cost_flops(compiled: Any) -> float | None:
    """FLOPs from ``compiled.cost_analysis()`` (a dict, or a list of one dict in older JAX)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops is not None else None


def memory_bytes(compiled: Any) -> dict[str, int] | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    names = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
             "generated_code_size_in_bytes")
    return {n: int(getattr(m, n)) for n in names if hasattr(m, n)}


def block(tree: Any) -> None:
    import jax

    jax.block_until_ready(tree)


def timed(fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` (which must block), after ``warmup``."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def rate_summary(seconds: list[float], batch: int) -> dict:
    """Samples/s median, min, max and ms per batch of timed repeats of one batch each."""
    rates = [batch / s for s in seconds]
    return {"samples_per_s_median": statistics.median(rates), "samples_per_s_min": min(rates),
            "samples_per_s_max": max(rates), "ms_per_batch_median": 1e3 * statistics.median(seconds)}


def machine_info() -> dict:
    import importlib.metadata as md

    # The first processor's fields. A VM may show only "AMD EPYC" as the model name: its family
    # and model (lscpu's "CPU family" and "Model") still tell the generation apart.
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if not name.strip():
                break
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        cpu += f", family {fields['cpu family']} model {fields['model']}"
    flags = fields.get("flags", "").split()
    vector = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "grain", "numpy", "torch"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cpu_vector_flags": vector, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def train_setup(ny: int, nx: int, batch: int, dtype: str, *, devices: int = 1, total_steps: int = 10_000,
                remat: bool = False, conv: str = "lax"):
    """State, compiled-step factory and a host batch, as the training loop builds them."""
    import jax
    import optax

    from kmri_jax.config import base_config
    from kmri_jax.train import losses
    from kmri_jax.train.corruption import Corruption
    from kmri_jax.train.networks import Network
    from kmri_jax.train.state import create_state, learning_rate_schedule
    from kmri_jax.train.step import make_train_step

    c = base_config()
    c.model.compute_dtype = dtype
    c.model.remat = remat
    c.model.conv = conv
    c.model.residual = False  # the seed's plain U-Net, like the PyTorch reference
    schedule = learning_rate_schedule(learning_rate=1e-3, end_learning_rate=1e-6,
                                      total_steps=total_steps, steps_per_epoch=100, per_epoch=False)
    tx = optax.adam(schedule)
    state, defs = create_state(c.seed, model_config=c.model, tx=tx)
    fn = make_train_step(defs, tx, loss_fn=losses.get_loss("seed_masked_l1"),
                         corruption=Corruption(), fixed_root=jax.random.key(1), schedule=schedule,
                         network=Network(input_scale="clean"))  # the seed's step
    mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices],
                         axis_types=(jax.sharding.AxisType.Auto,))
    return state, defs, fn, mesh


def synthetic_host_batch(ny: int, nx: int, batch: int) -> dict:
    """A host batch of ``batch`` random ``ny x nx`` images in the training pipeline's format
    (the seed's TR/TE, no grid combination, weight 1): for timing the step alone."""
    import numpy as np

    r = np.random.default_rng(0)
    return dict(image=r.random((batch, ny, nx), dtype=np.float32),
                valid_shape=np.tile([ny, nx], (batch, 1)).astype(np.int32),
                tr=np.full(batch, 2.5, np.float32), te=np.full(batch, 0.03, np.float32),
                volume=np.arange(batch, dtype=np.int32), slice=np.arange(batch, dtype=np.int32),
                combination=np.full(batch, -1, np.int32), weight=np.ones(batch, np.float32))


def ensure_bench_store(store_dir: Path, ny: int, nx: int, batch: int) -> Path:
    """A phantom slice store at ``ny x nx`` with at least two training batches."""
    from kmri_jax import data as kdata

    slices = 24
    subjects = max(6, -(-4 * batch // (slices // 2)))  # ~70% train: >= 2 batches comfortably
    return kdata.ensure_store(None, store_dir, options=kdata.PreprocessOptions(ny=ny, nx=nx),
                              phantom_subjects=subjects, phantom_slices=slices, seed=0)
