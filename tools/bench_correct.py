"""Benchmark: seconds per slice of ``kmri_jax.correct.estimate_motion`` (batched with vmap,
after compilation) and the SSIM it reaches, beside the input and the oracle, on phantom slices.

    python tools/bench_correct.py --shape 64x96 --batch 8
    python tools/bench_correct.py --shape 424x736 --batch 1 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_info  # noqa: E402

from kmri_jax import correct, sim  # noqa: E402
from kmri_jax.data.phantom import phantom_volume  # noqa: E402


def _ssim(clean, kspace) -> float:
    from skimage.metrics import structural_similarity

    t = np.abs(np.asarray(sim.kspace_to_image(clean)))
    x = np.abs(np.asarray(sim.kspace_to_image(kspace)))
    return float(np.mean([structural_similarity(a / a.max(), b / a.max(), data_range=1)
                          for a, b in zip(t, x)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="64x96")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-outer", type=int, default=None, help="estimate_motion's n_outer")
    ap.add_argument("--n-inner", type=int, default=None, help="estimate_motion's n_inner")
    args = ap.parse_args()
    ny, nx = (int(v) for v in args.shape.split("x"))
    b = args.batch
    vol = phantom_volume((b, ny, nx), seed=0, subject=3)
    images = jnp.asarray(vol / vol.max(), jnp.float32)
    combos = jnp.asarray((sim.orthogonal_combinations() * (b // 9 + 1))[:b])
    c = jax.jit(jax.vmap(sim.corrupt))(jax.random.split(jax.random.key(0), b), images,
                                      sim.grid_params(combos))
    options = {k: v for k, v in (("n_outer", args.n_outer), ("n_inner", args.n_inner)) if v is not None}
    estimate = jax.jit(jax.vmap(functools.partial(correct.estimate_motion, **options)))
    start = time.perf_counter()
    d = estimate(c.kspace, c.mask).block_until_ready()
    first = time.perf_counter() - start
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        estimate(c.kspace, c.mask).block_until_ready()
        seconds.append(time.perf_counter() - start)
    m = machine_info()
    print(f"{m['cpu']} x {m['cores']}, jax {jax.__version__}, {jax.devices()[0].platform}; "
          f"{b} x {ny}x{nx}, options {options or 'default'}")
    print(f"per slice: {1e3 * min(seconds) / b:.0f} ms (first call with compilation "
          f"{first:.1f} s)")
    print(f"SSIM input {_ssim(c.clean, c.kspace):.3f} | estimate "
          f"{_ssim(c.clean, correct.undo_motion(c.kspace, d)):.3f} | oracle "
          f"{_ssim(c.clean, correct.oracle(c)):.3f}")


if __name__ == "__main__":
    main()
