"""``kmri-prepare``: convert a NIfTI/BIDS dataset (or generated phantom data) into a slice store.

Examples::

    kmri-prepare --data-root ds005616 --store runs/store --splits ds005616/splits.json
    kmri-prepare --phantom 10 --store runs/store           # built-in phantom data
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kmri_jax.data.build import build_store, phantom_dir_for
from kmri_jax.data.errors import DataError
from kmri_jax.data.phantom import write_phantom_dataset
from kmri_jax.data.preprocess import PreprocessOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kmri-prepare", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", help="BIDS dataset or folder of .nii/.nii.gz files")
    p.add_argument("--store", required=True, help="store folder to create (replaced atomically)")
    p.add_argument("--splits", help="splits.json to use; created from --split-seed if missing")
    p.add_argument("--split-seed", type=int, default=42,
                   help="seed of the subject split (default 42, as the training configs' "
                   "data.split_seed, so kmri-train reuses the store)")
    p.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--pattern", help="glob relative to --data-root (default: BIDS "
                   "sub-*/anat/sub-*_<suffix>.nii.gz, else every .nii/.nii.gz)")
    p.add_argument("--suffix", default="T2w", help="BIDS suffix (default T2w)")
    d = PreprocessOptions()
    p.add_argument("--ny", type=int, default=d.ny, help=f"rows (default {d.ny})")
    p.add_argument("--nx", type=int, default=d.nx, help=f"columns (default {d.nx})")
    p.add_argument("--axis", type=int, default=d.axis, choices=(0, 1, 2),
                   help="array axis to slice along (0: sagittal in RAS)")
    p.add_argument("--reorient", action="store_true", help="turn volumes to closest RAS first")
    p.add_argument("--clip-percentile", type=float, default=d.clip_percentile)
    p.add_argument("--low-percentile", type=float, default=d.low_percentile)
    p.add_argument("--high-percentile", type=float, default=d.high_percentile)
    p.add_argument("--blank-rows", type=int, default=d.blank_rows,
                   help="zero the first/last N rows (seed: 12)")
    p.add_argument("--slices", choices=("all", "central", "content"), default=d.slices)
    p.add_argument("--central-fraction", type=float, default=d.central_fraction)
    p.add_argument("--content-threshold", type=float, default=d.content_threshold)
    p.add_argument("--min-size", type=int, default=d.min_size,
                   help="reject slice planes smaller than this (default %(default)s)")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="skip bad volumes (reported with a count) instead of stopping")
    p.add_argument("--phantom", type=int, metavar="N",
                   help="first generate N phantom subjects (into --data-root, or next to --store)")
    p.add_argument("--phantom-slices", type=int, default=24)
    p.add_argument("--phantom-version", type=int, default=2, choices=(1, 2),
                   help="2: the whole spine (default); 1: the earlier blocky phantom")
    p.add_argument("--seed", type=int, default=0, help="phantom generator seed")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if not args.data_root and not args.phantom:
        p.error("give --data-root, or --phantom N for built-in phantom data")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    try:
        opts = PreprocessOptions(
            ny=args.ny, nx=args.nx, axis=args.axis, reorient=args.reorient,
            clip_percentile=args.clip_percentile, low_percentile=args.low_percentile,
            high_percentile=args.high_percentile, blank_rows=args.blank_rows,
            slices=args.slices, central_fraction=args.central_fraction,
            content_threshold=args.content_threshold, min_size=args.min_size)
        root = args.data_root
        if args.phantom:
            root = write_phantom_dataset(root or phantom_dir_for(args.store),
                                         n_subjects=args.phantom,
                                         shape=(args.phantom_slices, args.ny, args.nx),
                                         version=args.phantom_version,
                                         seed=args.seed)
        report = build_store(root, args.store, options=opts, splits=args.splits,
                             split_seed=args.split_seed, split_fractions=args.split_fractions,
                             pattern=args.pattern, suffix=args.suffix, strict=args.strict)
    except DataError as e:
        print(f"kmri-prepare: error: {e}", file=sys.stderr)
        return 2
    skipped = f", skipped {len(report.skipped)} bad volume(s)" if report.skipped else ""
    print(f"store {Path(report.path)}: {report.n_slices} slices from {report.n_volumes} "
          f"volumes{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
