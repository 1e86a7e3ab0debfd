"""Simulator demo: corrupt a synthetic phantom and save a 4-panel PNG.

Panels: clean image, corrupted reconstruction |ifft2c(K_c)|, log |K_c|, and the breathing
displacement per phase-encode line (acquired lines marked). No data files needed.

    python tools/demo_sim.py --out runs/demo_sim.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax import sim


def phantom(ny: int, nx: int) -> np.ndarray:
    """``[ny, nx]`` float32 in [0, 1]: a few filled ellipses (a body, a cord-like bright spot)."""
    y, x = np.mgrid[-1:1:ny * 1j, -1:1:nx * 1j]
    image = np.zeros((ny, nx), np.float32)
    # (centre y, centre x, semi-axis y, semi-axis x, intensity added)
    for cy, cx, ay, ax, value in [
        (0.0, 0.0, 0.85, 0.6, 0.4),
        (0.1, 0.0, 0.5, 0.3, 0.2),
        (-0.35, 0.15, 0.15, 0.08, 0.3),
        (0.45, -0.2, 0.08, 0.12, 0.35),
        (0.0, 0.05, 0.06, 0.05, 0.4),
    ]:
        image[((y - cy) / ay) ** 2 + ((x - cx) / ax) ** 2 <= 1.0] += value
    return image / image.max()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo_sim.png"))
    ap.add_argument("--ny", type=int, default=256)
    ap.add_argument("--nx", type=int, default=256)
    ap.add_argument("--amplitude", type=float, default=5.0, help="A, pixels")
    ap.add_argument("--rate", type=float, default=15.0, help="f, breaths/min")
    ap.add_argument("--acceleration", type=float, default=4.0, help="R")
    ap.add_argument("--snr", type=float, default=20.0, help="SNR, dB")
    ap.add_argument("--tr", type=float, default=2.5, help="TR, seconds")
    ap.add_argument("--method", choices=["breathmetrics", "sinusoidal"], default="breathmetrics")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = phantom(args.ny, args.nx)
    params = sim.CorruptionParams(args.amplitude, args.rate, args.acceleration, args.snr,
                                  tr=args.tr, te=0.03)
    sim.check_inputs(image, params)
    out = jax.jit(sim.corrupt, static_argnames="method")(
        jax.random.key(args.seed), jnp.asarray(image), params, method=args.method)
    corrupted = np.abs(np.asarray(sim.kspace_to_image(out.kspace)))
    times = np.asarray(sim.line_times(args.ny, tr=args.tr, te=0.03))
    mask = np.asarray(out.mask)
    disp = np.asarray(out.displacement)

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("clean image")
    axes[1].imshow(corrupted / image.max(), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("corrupted: |ifft2c(K_c)|")
    axes[2].imshow(np.log1p(np.abs(np.asarray(out.kspace))), cmap="magma")
    axes[2].set_title("log(1 + |K_c|)")
    for ax in axes[:3]:
        ax.set_xlabel("readout (kx / x)")
        ax.set_ylabel("phase encode (ky / y)")
    axes[3].plot(times, disp, lw=1, color="tab:blue", label="displacement d (px)")
    axes[3].plot(times[mask], disp[mask], ".", ms=3, color="tab:red", label="acquired lines")
    axes[3].set_xlabel("line time ky*TR + TE (s)")
    axes[3].set_ylabel("pixels")
    axes[3].set_title(f"{args.method} trace x A")
    axes[3].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"A={args.amplitude} px, f={args.rate}/min, R={args.acceleration}, "
                 f"SNR={args.snr} dB, TR={args.tr} s, {args.ny}x{args.nx}, "
                 f"{mask.sum()}/{args.ny} lines")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
