"""README figure: one phantom slice corrupted by the seed's motion model and by the realism
options, with the same keys (same breathing, mask and noise draws).

Columns: clean; the seed (one line per TR, readout translation); a segmented echo train
(ETL 16, 10 ms echo spacing, skipped lines take no time); 2-D motion with rotation; and
distance-weighted breathing (full below a "diaphragm" level, decaying above it). Row 2 shows
each case's per-line motion against acquisition time.

    python tools/realism_figure.py --output docs/images/realism.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kmri_jax import sim  # noqa: E402
from kmri_jax.data.phantom import phantom_volume  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("docs/images/realism.png"))
    ap.add_argument("--ny", type=int, default=128)
    ap.add_argument("--nx", type=int, default=192)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    ny, nx = args.ny, args.nx
    volume = phantom_volume((9, ny, nx), seed=0, subject=1)
    image = volume[4].astype(np.float32)  # [ny (AP, phase encode), nx (SI, readout)]
    image /= image.max()
    base = dict(amplitude_px=5.0, rate_bpm=15.0, acceleration=2.0, snr_db=30.0, tr=2.5,
                te=0.1)
    weight = sim.breathing_weight_map((ny, nx), reference_px=0.35 * nx, axis=1, decay_mm=40.0,
                                      spacing_mm=1.0, full_side="lower")
    tse = dict(ordering="segmented", echo_train_length=16, echo_spacing=0.01,
               time_acquired_only=True)
    cases = [
        ("seed: 1 line per TR, readout shift", {}, {}, None),
        ("segmented echo train (ETL 16)", tse, {}, None),
        ("2-D motion + rotation (4 deg)", dict(motion_states=16),
         dict(amplitude_pe_px=3.0, rotation_deg=4.0), None),
        ("distance-weighted breathing", dict(motion_states=16), dict(amplitude_px=8.0), weight),
    ]
    key = jax.random.key(args.seed)
    fig, axes = plt.subplots(2, len(cases) + 1, figsize=(3.2 * (len(cases) + 1), 5.8),
                             gridspec_kw={"height_ratios": (1.6, 1)})
    axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("clean", fontsize=9)
    axes[1, 0].imshow(weight, cmap="magma", vmin=0, vmax=1)
    axes[1, 0].set_title("weight map (last column)", fontsize=9)
    for j, (title, options, extra, w) in enumerate(cases, start=1):
        params = sim.CorruptionParams(**{**base, **extra})
        out = sim.corrupt(key, image, params, w, **options)
        axes[0, j].imshow(np.asarray(sim.magnitude_image(out.kspace)), cmap="gray", vmin=0,
                          vmax=1)
        axes[0, j].set_title(title, fontsize=9)
        t, m = np.asarray(out.times), np.asarray(out.mask)
        order = np.argsort(t)
        ax = axes[1, j]
        ax.plot(t[order], np.asarray(out.displacement)[order], lw=0.8, label="readout px")
        if extra.get("amplitude_pe_px"):
            ax.plot(t[order], np.asarray(out.displacement_pe)[order], lw=0.8, label="PE px")
        if extra.get("rotation_deg"):
            ax.plot(t[order], np.asarray(out.rotation_deg)[order], lw=0.8, label="rotation deg")
        ax.scatter(t[m], np.asarray(out.displacement)[m], s=3, color="tab:red", zorder=3)
        ax.set_xlabel(f"acquisition time (s); scan {t[m].max():.0f} s", fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
        ax.tick_params(labelsize=7)
    for ax in axes[0]:
        ax.set_axis_off()
    axes[1, 0].set_axis_off()
    fig.suptitle(f"one phantom slice {ny}x{nx}, A = 5 px (8 px weighted), f = 15/min, R = 2, "
                 "SNR 30 dB, TR 2.5 s, same keys", fontsize=10)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
