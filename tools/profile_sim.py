"""Profile: where ``jit(vmap(corrupt))`` spends its time, stage by stage (docs/profile.md).

Each stage of the seed's pipeline is compiled on its own from the simulator's pieces, vmapped
over the batch, and timed round-robin (one call of every stage per repeat, so the machine's
load falls on all alike). The alternatives a stage was measured against are rows too: the
complex FFT before the real-input one, and ``jax.random``'s Gaussians (Threefry, ``rbg``,
``unsafe_rbg`` keys) beside the fused sampler.

    python tools/profile_sim.py --config 424x736:32 --repeats 7 --json runs/profile_sim.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_info, parse_config, timed  # noqa: E402

from kmri_jax import sim  # noqa: E402
from kmri_jax.sim.kspace import _AXES  # noqa: E402


def _complex_fft(images: jax.Array) -> jax.Array:
    """The centred FFT as before the real-input path: complex fft2, then fftshift."""
    return jnp.fft.fftshift(jnp.fft.fft2(images.astype(jnp.complex64), axes=_AXES), axes=_AXES)


def stages(b: int, ny: int, nx: int) -> dict[str, tuple]:
    """Stage name -> (function, arguments), each function batched over ``b`` slices."""
    images = jnp.asarray(np.random.default_rng(0).random((b, ny, nx)), jnp.float32)
    params = sim.sample_params(jax.random.key(1), b)
    keys = jax.random.split(jax.random.key(2), b)
    kspace = jax.jit(sim.image_to_kspace)(images)
    masks = jax.vmap(lambda k, r: sim.cartesian_mask(k, ny, acceleration=r))(
        keys, params.acceleration)
    displacement = params.amplitude_px[:, None] * jnp.ones((b, ny))

    def mask(keys, r):
        return jax.vmap(lambda k, r: sim.cartesian_mask(k, ny, acceleration=r))(keys, r)

    def trace(keys, p):
        return jax.vmap(lambda k, tr, te, f: sim.breathing_trace(
            k, sim.line_times(ny, tr=tr, te=te), rate_bpm=f))(keys, p.tr, p.te, p.rate_bpm)

    def masked(k, m):
        return jnp.where(m[:, :, None], k, jnp.zeros((), k.dtype))

    def noise(rng):
        return lambda keys, k, m, snr: jax.vmap(lambda key, k, m, s: sim.add_noise(
            key, k, m, snr_db=s, noise_rng=rng))(keys, k, m, snr)

    def normals(keys):
        return jax.vmap(lambda k: jax.random.normal(k, (2, ny, nx)))(keys)

    def corrupt(rng):
        return lambda keys, images, p: jax.vmap(lambda k, i, q: sim.corrupt(
            k, i, q, noise_rng=rng))(keys, images, p)

    snr = params.snr_db
    return {
        "line mask (`cartesian_mask`)": (mask, (keys, params.acceleration)),
        "line times + breathing trace": (trace, (keys, params)),
        "centred FFT, real input (`image_to_kspace`)": (sim.image_to_kspace, (images,)),
        "centred FFT, complex fft2 + fftshift (before)": (_complex_fft, (images,)),
        "motion phase ramp (`apply_motion`)": (jax.vmap(sim.apply_motion), (kspace, displacement)),
        "line masking": (masked, (kspace, masks)),
        "noise, fused sampler (`add_noise`)": (noise("fused"), (keys, kspace, masks, snr)),
        "noise, `jax.random.normal` (before)": (noise("jax"), (keys, kspace, masks, snr)),
        "Gaussians alone, Threefry key": (normals, (keys,)),
        "Gaussians alone, `rbg` key": (normals, (jax.random.split(
            jax.random.key(2, impl="rbg"), b),)),
        "Gaussians alone, `unsafe_rbg` key": (normals, (jax.random.split(
            jax.random.key(2, impl="unsafe_rbg"), b),)),
        "full `corrupt`, fused sampler (default)": (corrupt("fused"), (keys, images, params)),
        "full `corrupt`, noise_rng='jax'": (corrupt("jax"), (keys, images, params)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=parse_config, default=(424, 736, 32), metavar="HxW:B")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ny, nx, b = args.config
    compiled = {}
    for name, (fn, fn_args) in stages(b, ny, nx).items():
        f = jax.jit(fn)
        jax.block_until_ready(f(*fn_args))
        compiled[name] = (f, fn_args)
    seconds = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, (f, fn_args) in compiled.items():
            seconds[name] += timed(lambda: jax.block_until_ready(f(*fn_args)), 1, 0)
    machine = machine_info()
    print(f"kmri_jax.sim per-stage profile: batch {b} x {ny} x {nx}, float32, seed grid; "
          f"{args.repeats} round-robin repeats")
    print(f"cpu: {machine['cpu']} x {machine['cores']} ({' '.join(machine['cpu_vector_flags'])})"
          f"; jax {jax.__version__}; {jax.devices()}")
    print()
    print("| stage | ms/batch (median) | min-max | samples/s |")
    print("|---|---|---|---|")
    table = {}
    for name, s in seconds.items():
        med = statistics.median(s)
        table[name] = {"median_ms": 1e3 * med, "min_ms": 1e3 * min(s), "max_ms": 1e3 * max(s)}
        print(f"| {name} | {1e3 * med:.1f} | {1e3 * min(s):.1f}-{1e3 * max(s):.1f} | "
              f"{b / med:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine,
            "shape": [b, ny, nx], "repeats": args.repeats, "stages": table}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
