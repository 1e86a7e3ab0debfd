"""Report: the training-free motion estimate on a split at any slice size, per amplitude, beside
the corrupted input and the oracle bound (no checkpoint needed).

The evaluation's fixed corruption (``config.eval.seed``, the 9 orthogonal grid combinations
per slice by default), SSIM as every evaluation computes it, and per A: the share of the
oracle's SSIM gain over the input, and the displacement RMS error after the best constant
against that of estimating no motion. E.g.::

    python tools/estimate_report.py --shape 128x96 --store runs/est128/phantom --split val \\
        --phantom-subjects 6 --phantom-slices 12
    python tools/other_anatomy.py --native runs/epi128
    python tools/estimate_report.py --shape 128x96 --store runs/est128/epi --split test \\
        --data-root runs/epi128 --splits runs/epi128/splits.json
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from kmri_jax.config import base_config
from kmri_jax.data import PreprocessOptions, SliceStore, ensure_store
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.step import compiled_baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="64x96", help="slice size ROWSxCOLUMNS")
    ap.add_argument("--store", required=True, help="slice store to use or prepare")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--data-root", default="", help="BIDS/NIfTI dataset (default: the phantom)")
    ap.add_argument("--splits", default=None, help="splits.json for --data-root")
    ap.add_argument("--phantom-subjects", type=int, default=12)
    ap.add_argument("--phantom-slices", type=int, default=12)
    ap.add_argument("--combinations", default="orthogonal", help="all, orthogonal or indices")
    ap.add_argument("--batch", type=int, default=27, help="slices per vmapped call")
    args = ap.parse_args()
    ny, nx = (int(v) for v in args.shape.split("x"))
    config = base_config()
    store = SliceStore(ensure_store(
        args.data_root or None, args.store, options=PreprocessOptions(ny=ny, nx=nx),
        splits=args.splits, split_seed=config.data.split_seed,
        phantom_subjects=args.phantom_subjects, phantom_slices=args.phantom_slices,
        seed=config.seed))
    corruption = Corruption.from_config(config)
    combos = corruption.parse_combinations(args.combinations)
    rows = store.indices(args.split)
    records = store.read(np.repeat(rows, len(combos)))
    records["combination"] = np.tile(np.asarray(combos, np.int32), len(rows))
    records["weight"] = np.ones(len(records["combination"]), np.float32)
    # The evaluation's own baseline step: same fixed corruption, metrics and displacement error.
    baseline = compiled_baseline(config, corruption=corruption)
    keys = ("input_ssim", "oracle_ssim", "estimate_ssim", "estimate_disp_rmse", "input_disp_rmse")
    start = time.perf_counter()
    parts = [jax.device_get(baseline({k: v[i:i + args.batch] for k, v in records.items()}))
             for i in range(0, len(records["weight"]), args.batch)]
    seconds = time.perf_counter() - start
    s_in, s_or, s_est, rms, rms0 = (np.concatenate([p[k] for p in parts]) for k in keys)
    amplitude = corruption.grid_table()["A"][records["combination"]]
    print(f"{args.store}, split {args.split}: {len(rows)} slices x {len(combos)} combinations, "
          f"{ny}x{nx}; {seconds:.1f} s with compilation")
    print("| A (px) | input SSIM | oracle SSIM | estimate SSIM | oracle share | "
          "RMS error / zeros (px) |")
    print("|---|---|---|---|---|---|")
    for a in [*np.unique(amplitude), None]:
        sel = amplitude == a if a is not None else np.ones_like(amplitude, bool)
        i, o, e = s_in[sel].mean(), s_or[sel].mean(), s_est[sel].mean()
        label = f"{a:g}" if a is not None else "all"
        print(f"| {label} | {i:.3f} | {o:.3f} | {e:.3f} | {100 * (e - i) / (o - i):.0f}% | "
              f"{rms[sel].mean():.2f} / {rms0[sel].mean():.2f} |")


if __name__ == "__main__":
    main()
