"""The README's phantom picture: version 2 (whole spine) beside version 1, at full size and at the
quickstart's 64 x 96, with the lung landmarks of version 2 marked.

    python tools/phantom_figure.py --out docs/images/phantom.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kmri_jax.data.phantom.dataset import phantom_volume  # noqa: E402
from kmri_jax.data.phantom.whole_spine import whole_spine_volume  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/images/phantom.png"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--subject", type=int, default=1)
    args = ap.parse_args()
    full, small, slices = (424, 736), (64, 96), 9
    v2, info = whole_spine_volume((slices, *full), seed=args.seed, subject=args.subject)
    v1 = phantom_volume((slices, *full), seed=args.seed, subject=args.subject, version=1)
    q2 = phantom_volume((12, *small), seed=args.seed, subject=args.subject)
    q1 = phantom_volume((12, *small), seed=args.seed, subject=args.subject, version=1)
    _, (_, hy, hz) = info, info["spacing_mm"]
    _, q_info = whole_spine_volume((1, *small), seed=args.seed, subject=args.subject,
                                   texture=False, bias=False, noise=False)
    q_aspect = q_info["spacing_mm"][1] / q_info["spacing_mm"][2]
    # (image, title, lung marks?, pixel aspect: row mm / column mm, so anatomy keeps its shape)
    panels = [(v2[slices // 2], "version 2 (default), 424 x 736, midline", True, hy / hz),
              (v2[slices - 1], "version 2, lateral slice (lungs)", True, hy / hz),
              (v1[slices // 2], "version 1, 424 x 736, midline (1 mm pixels)", False, 1.0),
              (q2[6], "version 2 at the quickstart's 64 x 96", False, q_aspect),
              (q1[6], "version 1 at 64 x 96", False, 1.0)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)))
    for ax, (img, title, marks, aspect) in zip(axes, panels):
        # Superior to the right, anterior up: columns run inferior -> superior, rows P -> A.
        ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=np.percentile(img, 99.7),
                  aspect=aspect, interpolation="nearest")
        if marks:
            for key, color in (("diaphragm_dome", "tab:orange"), ("lung_apex", "tab:cyan")):
                ax.axvline(info[key] * img.shape[1], color=color, lw=0.8, ls="--", label=key)
            ax.legend(loc="upper right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].set_xlabel("readout (columns): inferior -> superior; rows: posterior -> anterior")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
