"""Benchmark: corrupted samples/s of jit(vmap(corrupt)) vs a per-sample NumPy pipeline.

Both run the same pipeline (docs/conventions.md): centred FFT -> breathmetrics breathing trace at the
line times -> per-line phase ramp -> Cartesian mask -> complex noise at the target SNR, with
seed-grid parameters drawn per sample. Reports the median over repeats after warm-up, with
min/max (JAX and NumPy repeats interleaved so both see the same machine load), and writes
JSON with ``--json PATH``.

    python tools/bench_sim.py --json runs/bench_sim.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_info, rate_summary, timed  # noqa: E402

from kmri_jax import sim  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The reference: a straightforward per-sample NumPy implementation of the same pipeline.


def np_breathmetrics(rng: np.random.Generator, times: np.ndarray, rate: float,
                     max_cycles: int = 1024, window: float = 0.5, noise_std: float = 0.01):
    """Breathmetrics-like trace at ``times`` (box-smoothed in closed form), max|r| = 1."""
    period = 60.0 / rate
    length = period * np.maximum(1 + 0.1 * rng.standard_normal(max_cycles), 0.2)
    amp = np.maximum(0.5 + 0.05 * rng.standard_normal(max_cycles), 0.0)
    pauses = []
    for _ in range(2):
        present = rng.random(max_cycles) < 0.3
        pauses.append(np.where(present, period * np.maximum(
            0.2 + 0.1 * rng.standard_normal(max_cycles), 0.0), 0.0))
    p_in, p_ex = pauses
    p_in = np.where(length - p_in >= 0.5 * length, p_in, 0.0)
    p_ex = np.where(length - p_in - p_ex >= 0.5 * length, p_ex, 0.0)
    breath = length - p_in - p_ex
    ends = np.cumsum(length)
    starts = ends - length

    def integral(t):
        i = np.clip(np.searchsorted(ends, t, side="right"), 0, max_cycles - 1)
        s, b = t - starts[i], breath[i]
        phi = np.clip(s, 0, b / 2) + np.clip(s - b / 2 - p_in[i], 0, b / 2)
        return amp[i] * b / (2 * math.pi) * (1 - np.cos(2 * math.pi * phi / b))

    r = (integral(times + window / 2) - integral(times - window / 2)) / window
    r = r + noise_std * 0.5 * rng.standard_normal(times.shape)
    return r / (np.abs(r).max() + 1e-8)


def np_corrupt(rng: np.random.Generator, image: np.ndarray, a: float, f: float, r: float,
               snr_db: float, tr: float = 2.5, te: float = 0.03, cf: float = 0.08):
    ny, nx = image.shape
    k = np.fft.fftshift(np.fft.fft2(image)).astype(np.complex64)
    times = np.arange(ny) * tr + te
    d = a * np_breathmetrics(rng, times, f)
    u = np.fft.fftshift(np.fft.fftfreq(nx))
    k_m = k * np.exp(-2j * np.pi * d[:, None] * u[None, :]).astype(np.complex64)
    n_c = max(1, math.floor(ny * cf))
    start = ny // 2 - n_c // 2
    mask = np.zeros(ny, bool)
    mask[start:start + n_c] = True
    outer = np.flatnonzero(~mask)
    mask[rng.choice(outer, math.floor(len(outer) / r), replace=False)] = True
    k_u = k_m * mask[:, None]
    sigma = np.sqrt(np.mean(np.abs(k_u[mask]) ** 2)) / 10 ** (snr_db / 20)
    noise = sigma * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) / np.sqrt(2)
    return k_u + (noise * mask[:, None]).astype(np.complex64), k, mask, d


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ny", type=int, default=424)
    ap.add_argument("--nx", type=int, default=736)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--numpy-repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    b, ny, nx = args.batch, args.ny, args.nx

    rng = np.random.default_rng(0)
    images_np = rng.random((b, ny, nx)).astype(np.float32)
    images = jnp.asarray(images_np)
    params = sim.sample_params(jax.random.key(1), b)
    params_np = [np.asarray(leaf) for leaf in params]
    keys = jax.random.split(jax.random.key(2), b)

    corrupt_batch = jax.jit(jax.vmap(sim.corrupt))
    t0 = time.perf_counter()
    jax.block_until_ready(corrupt_batch(keys, images, params))
    compile_s = time.perf_counter() - t0

    def jax_batch():
        jax.block_until_ready(corrupt_batch(keys, images, params))

    def numpy_batch():
        for i in range(b):
            np_corrupt(rng, images_np[i], *(float(leaf[i]) for leaf in params_np))

    # Interleaved repeats, so both see the same (shared-machine) load over time.
    for _ in range(args.warmup):
        jax_batch()
    numpy_batch()
    jax_s, numpy_s = [], []
    for i in range(args.repeats):
        jax_s += timed(jax_batch, 1, 0)
        if i < args.numpy_repeats:
            numpy_s += timed(numpy_batch, 1, 0)

    # Cost of the breathing trace alone vs the cycle budget (static max_cycles).
    times = jax.vmap(lambda tr, te: sim.line_times(ny, tr=tr, te=te))(params.tr, params.te)
    trace_cost = {}
    for cycles in (256, 1024, 4096):
        fn = jax.jit(jax.vmap(lambda k, t, f, c=cycles: sim.breathing_trace(
            k, t, rate_bpm=f, max_cycles=c)))
        s = timed(lambda: jax.block_until_ready(fn(keys, times, params.rate_bpm)),
                  args.repeats, args.warmup)
        trace_cost[cycles] = statistics.median(s) * 1e3

    jax_sum, np_sum = rate_summary(jax_s, b), rate_summary(numpy_s, b)
    print(f"kmri_jax.sim benchmark: batch {b} x {ny} x {nx}, float32, breathmetrics, seed grid")
    machine = machine_info()
    print(f"devices: {jax.devices()}; cpu: {machine['cpu']} x {machine['cores']} "
          f"({' '.join(machine['cpu_vector_flags'])}); jax {jax.__version__}")
    print(f"jit(vmap(corrupt)) compile + first call: {compile_s:.2f} s")
    print()
    print("| implementation | samples/s (median) | min-max | ms/batch (median) |")
    print("|---|---|---|---|")
    for name, s in (("jax.jit(jax.vmap(corrupt))", jax_sum), ("NumPy, per sample", np_sum)):
        print(f"| {name} | {s['samples_per_s_median']:.1f} | {s['samples_per_s_min']:.1f}-"
              f"{s['samples_per_s_max']:.1f} | {1e3 * b / s['samples_per_s_median']:.1f} |")
    speedup = jax_sum["samples_per_s_median"] / np_sum["samples_per_s_median"]
    print(f"\nspeed-up (median): {speedup:.2f}x")
    print("\nbreathing trace alone, vmap over the batch (ms/batch, median):",
          ", ".join(f"max_cycles={c}: {ms:.2f}" for c, ms in trace_cost.items()))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {**machine, "devices": [str(d) for d in jax.devices()]},
            "shape": [b, ny, nx], "repeats": args.repeats, "numpy_repeats": args.numpy_repeats,
            "warmup": args.warmup, "compile_s": compile_s, "jax": jax_sum, "numpy": np_sum,
            "speedup_median": speedup, "breathing_trace_ms_by_max_cycles": trace_cost,
        }, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
