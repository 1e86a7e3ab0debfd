"""Benchmark: corrupted samples/s of jit(vmap(corrupt)) vs per-sample NumPy pipelines.

Three references on the same images and parameters: our pipeline with ``noise_rng='jax'``
(the noise drawn by ``jax.random.normal``, as before 2026-12-03), a NumPy port of it, and the
seed's own chain (neurokit2's breathing trace at 100 Hz, then numpy; needs the ``bench``
extra, ``--seed-repeats 0`` skips it).

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
# The seed's own chain, per sample, as its Kspace_simulation.py runs it: neurokit2's
# breathmetrics trace sampled at 100 Hz over int(ny TR) s, linearly interpolated at the line
# times, then numpy's complex128 FFT, phase ramp, mask and noise (written here from its steps).


def seed_chain(seed: int, image: np.ndarray, a: float, f: float, r: float, snr_db: float,
               tr: float = 2.5, te: float = 0.03, cf: float = 0.08):
    import neurokit2 as nk  # the bench extra: pip install -e .[bench]

    ny, nx = image.shape
    duration = ny * tr
    trace = nk.rsp_simulate(duration=int(duration), sampling_rate=100, respiratory_rate=f,
                            method="breathmetrics", random_state=seed)
    line_times = np.arange(ny) * tr + te
    r_lines = np.interp(line_times, np.linspace(0, duration, len(trace)), trace)
    d = a * r_lines / (np.abs(r_lines).max() + 1e-8)
    k = np.fft.fftshift(np.fft.fft2(image))
    u = np.fft.fftshift(np.fft.fftfreq(nx))
    k_m = k * np.exp(-2j * np.pi * d[:, None] * u[None, :])
    gen = np.random.default_rng(seed)
    mask = np.zeros(ny, bool)
    n_c = max(1, int(ny * cf))
    mask[ny // 2 - n_c // 2:ny // 2 - n_c // 2 + n_c] = True
    outer = np.flatnonzero(~mask)
    mask[gen.choice(outer, len(outer) // int(r), replace=False)] = True
    mask2d = np.tile(mask[:, None], (1, nx))
    k_u = k_m * mask2d
    sigma = np.sqrt(np.mean(np.abs(k_u[mask2d]) ** 2)) / 10 ** (snr_db / 20)
    noise = sigma * (gen.standard_normal(k.shape) + 1j * gen.standard_normal(k.shape)) / np.sqrt(2)
    return k_u + noise * mask2d, k, mask, d


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ny", type=int, default=424)
    ap.add_argument("--nx", type=int, default=736)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--numpy-repeats", type=int, default=5)
    ap.add_argument("--seed-repeats", type=int, default=3,
                    help="repeats of the seed's own chain (0 = skip; needs neurokit2)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    b, ny, nx = args.batch, args.ny, args.nx

    rng = np.random.default_rng(0)
    images_np = rng.random((b, ny, nx)).astype(np.float32)
    images = jnp.asarray(images_np)
    params = sim.sample_params(jax.random.key(1), b)
    seed_fields = ("amplitude_px", "rate_bpm", "acceleration", "snr_db", "tr", "te")
    params_np = [np.asarray(getattr(params, name)) * np.ones(b) for name in seed_fields]
    keys = jax.random.split(jax.random.key(2), b)

    corrupt_batch = jax.jit(jax.vmap(sim.corrupt))
    corrupt_jax_rng = jax.jit(jax.vmap(lambda k, i, p: sim.corrupt(k, i, p, noise_rng="jax")))
    jax.block_until_ready(corrupt_jax_rng(keys, images, params))
    t0 = time.perf_counter()
    jax.block_until_ready(corrupt_batch(keys, images, params))
    compile_s = time.perf_counter() - t0

    def jax_batch():
        jax.block_until_ready(corrupt_batch(keys, images, params))

    def jax_rng_batch():
        jax.block_until_ready(corrupt_jax_rng(keys, images, params))

    def numpy_batch():
        for i in range(b):
            np_corrupt(rng, images_np[i], *(float(leaf[i]) for leaf in params_np))

    calls = 0

    def seed_batch():
        nonlocal calls
        for i in range(b):
            calls += 1
            seed_chain(calls, images_np[i],
                       *(float(leaf[i]) for leaf in params_np))

    # Interleaved repeats, so both see the same (shared-machine) load over time.
    for _ in range(args.warmup):
        jax_batch()
    numpy_batch()
    if args.seed_repeats:
        seed_batch()
    jax_s, jax_rng_s, numpy_s, seed_s = [], [], [], []
    for i in range(args.repeats):
        jax_s += timed(jax_batch, 1, 0)
        jax_rng_s += timed(jax_rng_batch, 1, 0)
        if i < args.numpy_repeats:
            numpy_s += timed(numpy_batch, 1, 0)
        if i < args.seed_repeats:
            seed_s += timed(seed_batch, 1, 0)

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
    jax_rng_sum = rate_summary(jax_rng_s, b)
    seed_sum = rate_summary(seed_s, b) if seed_s else None
    print(f"kmri_jax.sim benchmark: batch {b} x {ny} x {nx}, float32, breathmetrics, seed grid")
    machine = machine_info()
    print(f"devices: {jax.devices()}; cpu: {machine['cpu']} x {machine['cores']} "
          f"({' '.join(machine['cpu_vector_flags'])}); jax {jax.__version__}")
    print(f"jit(vmap(corrupt)) compile + first call: {compile_s:.2f} s")
    print()
    print("| implementation | samples/s (median) | min-max | ms/batch (median) |")
    print("|---|---|---|---|")
    rows = [("jax.jit(jax.vmap(corrupt)), default (fused noise sampler)", jax_sum),
            ("jax.jit(jax.vmap(corrupt)), noise_rng='jax'", jax_rng_sum),
            ("NumPy port of our pipeline, per sample", np_sum)]
    if seed_sum:
        rows.append(("the seed's chain (neurokit2 trace at 100 Hz, numpy), per sample", seed_sum))
    for name, s in rows:
        print(f"| {name} | {s['samples_per_s_median']:.1f} | {s['samples_per_s_min']:.1f}-"
              f"{s['samples_per_s_max']:.1f} | {1e3 * b / s['samples_per_s_median']:.1f} |")
    speedup = jax_sum["samples_per_s_median"] / np_sum["samples_per_s_median"]
    print(f"\nspeed-up over the NumPy port (median): {speedup:.2f}x")
    seed_speedup = None
    if seed_sum:
        seed_speedup = jax_sum["samples_per_s_median"] / seed_sum["samples_per_s_median"]
        print(f"speed-up over the seed's chain (median): {seed_speedup:.2f}x")
    print("\nbreathing trace alone, vmap over the batch (ms/batch, median):",
          ", ".join(f"max_cycles={c}: {ms:.2f}" for c, ms in trace_cost.items()))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {**machine, "devices": [str(d) for d in jax.devices()]},
            "shape": [b, ny, nx], "repeats": args.repeats, "numpy_repeats": args.numpy_repeats,
            "warmup": args.warmup, "compile_s": compile_s, "jax": jax_sum, "jax_noise_rng_jax": jax_rng_sum,
            "numpy": np_sum, "seed_chain": seed_sum, "speedup_median": speedup,
            "speedup_over_seed_chain_median": seed_speedup, "seed_repeats": args.seed_repeats, "breathing_trace_ms_by_max_cycles": trace_cost,
        }, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
