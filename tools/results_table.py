"""The comparison tables of docs/results.md, from kmri-evaluate reports (their per_sample.csv).

For each report (``LABEL=DIR``): mean SSIM per motion amplitude A of the corrupted input, the
oracle (true motion undone, zero-filled), the training-free estimate and the network, the
network's share of the oracle's gain over the input, and the smallest gain of the network
over the input at any level of A, R and SNR (the check that it is never below the input).

    python tools/results_table.py image_unet=runs/report_image_unet motion_unet=runs/report_motion_unet
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def _columns(path: Path) -> dict[str, np.ndarray]:
    with open(path / "per_sample.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.asarray([r[k] for r in rows], float) for k in rows[0] if k != "subject"}


def table(reports: list[tuple[str, Path]]) -> str:
    lines = ["| recipe | A | input | oracle | estimate | network | network's share of the oracle "
             "gain | estimate's share | smallest network gain over input (A, R, SNR levels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, path in reports:
        t = _columns(path)
        worst = min(float(np.mean(t["output_ssim"][t[p] == v] - t["input_ssim"][t[p] == v]))
                    for p in ("A", "R", "SNR") for v in np.unique(t[p]))
        for a in [*np.unique(t["A"]), None]:
            sel = np.ones(len(t["A"]), bool) if a is None else t["A"] == a
            m = {k: float(np.mean(t[f"{k}_ssim"][sel])) for k in ("input", "oracle", "estimate",
                                                                   "output") if f"{k}_ssim" in t}
            span = m["oracle"] - m["input"]
            share = lambda k: f"{100 * (m[k] - m['input']) / span:.0f}%" if k in m else ""  # noqa
            lines.append(f"| {label} | {'all' if a is None else f'{a:g}'} | {m['input']:.3f} | "
                         f"{m['oracle']:.3f} | {m.get('estimate', float('nan')):.3f} | "
                         f"{m['output']:.3f} | {share('output')} | {share('estimate')} | "
                         f"{f'{worst:+.3f}' if a is None else ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", metavar="LABEL=DIR")
    args = ap.parse_args()
    print(table([(r.split("=", 1)[0], Path(r.split("=", 1)[1])) for r in args.reports]))


if __name__ == "__main__":
    main()
