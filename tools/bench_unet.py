"""Benchmark: U-Net train step (forward + L1 + backward + Adam) samples/s, JAX vs PyTorch.

Variants, all the seed architecture at base 32 (1,926,754 parameters), Adam 1e-3, plain L1
on random [B, 2, S, S] inputs and targets, BatchNorm in training mode:

- ``jax-einsum``: ``kmri_jax.models.UNet`` as used (reshape-max pooling, einsum up-sampling).
- ``jax-lax``: the same model with ``resample="lax"`` (``nnx.max_pool`` and
  ``lax.conv_transpose``, i.e. what ``nnx.ConvTranspose`` computes), same parameters.
- ``torch``: the seed's PyTorch model from ``tools/torch_reference.py``
  (``torch.set_num_threads(threads)``), when torch is installed.

The full training-step comparison (corruption, masked loss, input pipeline, scaling, FLOPs) is
``tools/benchmark.py``; this script isolates the U-Net's up-/down-sampling variants.

Each variant: ``--warmup`` steps (the first, with compilation, reported separately); then
``--steps`` rounds in which every variant runs one timed step (round-robin, so a shared
machine's load affects all alike). Reports the median and the minimum step time; prints a table
and writes JSON.

    python tools/bench_unet.py                       # 128x128, batch 8
    python tools/bench_unet.py --sizes 128 256 --out runs/bench/unet.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kmri_jax.models import UNet, count_params  # noqa: E402


def setup_jax(resample: str, *, size: int, batch: int) -> tuple[Callable[[], None], dict[str, Any]]:
    """Functional-NNX train step (split once, jit a pure step, donate the state); returns a
    blocking one-step closure and facts about the variant."""
    model = UNet(rngs=nnx.Rngs(0), resample=resample)
    model.train()
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    def train_step(params, stats, opt_state, x, y):  # noqa: ANN001, ANN202
        def loss_fn(params):  # noqa: ANN001, ANN202
            m = nnx.merge(graphdef, params, stats, copy=True)
            loss = jnp.mean(jnp.abs(m(x) - y))
            return loss, nnx.state(m, nnx.BatchStat)

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    train_step = jax.jit(train_step, donate_argnums=(0, 1, 2))
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (batch, 2, size, size), jnp.float32)
    y = jax.random.normal(ky, (batch, 2, size, size), jnp.float32)
    state = [params, stats, opt_state]

    def step() -> None:
        state[0], state[1], state[2], loss = train_step(*state, x, y)
        loss.block_until_ready()

    return step, {"params": count_params(model)}


def setup_torch(*, size: int, batch: int, threads: int) -> tuple[Callable[[], None], dict[str, Any]]:
    """The same train step in PyTorch; returns a one-step closure and facts."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torch_reference import seed_unet  # the shared PyTorch model of the seed

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = seed_unet(32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 2, size, size)
    y = torch.randn(batch, 2, size, size)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean(torch.abs(model(x) - y))
        loss.backward()
        opt.step()

    params = sum(p.numel() for p in model.parameters())
    return step, {"params": params, "torch_version": torch.__version__, "torch_threads": threads}


def _worker(conn: Any, variant: str, size: int, batch: int, warmup: int, threads: int) -> None:
    """Runs in its own process: set up and warm up ``variant``, report facts, then time one step
    per ``"step"`` message until ``"stop"``."""
    try:
        if variant == "torch":
            step, info = setup_torch(size=size, batch=batch, threads=threads)
        else:
            step, info = setup_jax(variant.removeprefix("jax-"), size=size, batch=batch)
    except ImportError as e:
        conn.send({"error": f"{variant}: {e}"})
        return
    t0 = time.perf_counter()
    step()
    info["compile_and_first_step_s"] = time.perf_counter() - t0
    for _ in range(warmup - 1):
        step()
    conn.send(info)
    while conn.recv() == "step":
        t0 = time.perf_counter()
        step()
        conn.send(time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["jax-einsum", "jax-lax", "torch"],
                        choices=["jax-einsum", "jax-lax", "torch"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_unet.json"))
    args = parser.parse_args()

    load_start = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    rows = []
    for size in args.sizes:
        # One process per variant (XLA's and OpenMP's thread pools never share a process), all
        # warmed up first, then timed round-robin, one step each per round, so the load of other
        # users of a shared machine hits all variants alike.
        workers = []
        for variant in args.variants:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker,
                args=(child, variant, size, args.batch, args.warmup, args.torch_threads),
            )
            proc.start()
            info = parent.recv()  # setup and warm-up run one worker at a time
            if "error" in info:
                print(f"skipping {info['error']}", file=sys.stderr)
                proc.join()
                continue
            info["step_times_s"] = []
            workers.append((variant, proc, parent, info))
        for _ in range(args.steps):
            for _, _, conn, info in workers:
                conn.send("step")
                info["step_times_s"].append(conn.recv())
        for variant, proc, conn, info in workers:
            conn.send("stop")
            proc.join()
            median = statistics.median(info["step_times_s"])
            rows.append({"variant": variant, "size": size, "batch": args.batch,
                         "median_step_s": median, "samples_per_s": args.batch / median,
                         "samples_per_s_best": args.batch / min(info["step_times_s"]), **info})

    header = (f"{'variant':<12}{'size':>9}{'batch':>7}{'median ms':>11}{'min ms':>9}"
              f"{'samples/s':>11}{'best s/s':>10}{'first s':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<12}{r['size']:>5}x{r['size']:<3}{r['batch']:>7}"
              f"{1e3 * r['median_step_s']:>11.0f}{1e3 * min(r['step_times_s']):>9.0f}"
              f"{r['samples_per_s']:>11.2f}{r['samples_per_s_best']:>10.2f}"
              f"{r['compile_and_first_step_s']:>9.1f}")

    meta = {
        "jax": jax.__version__, "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_1m_at_start": load_start, "loadavg_1m_at_end": os.getloadavg()[0],
        "note": "median (and best) of round-robin timed steps after warm-up, one process per "
                "variant; the machine may be shared",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
