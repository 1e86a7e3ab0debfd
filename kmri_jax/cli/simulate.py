"""``kmri-simulate``: corrupt NIfTI volumes with breathing motion, undersampling and noise.

Examples::

    kmri-simulate --input sub-01_T2w.nii.gz --output sub-01_corrupted.nii.gz \\
        --amplitude 5 --rate 15 --acceleration 4 --snr 20 --save-kspace --preview preview.png
    kmri-simulate --input ds005616 --output corrupted/ --grid     # 81 volumes per input volume

Also ``python -m kmri_jax.cli.simulate``. Exit status: 0 ok, 1 bad input (one-line message on
stderr, no output files left), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kmri_jax.cli.common import (add_corruption_arguments, configure_logging, run_command,
                                 use_compilation_cache)

PROG = "kmri-simulate"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Corrupt NIfTI volumes with simulated "
                                "breathing motion, Cartesian undersampling and noise.")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="a .nii/.nii.gz volume, or a BIDS folder (sub-*/anat/*_T2w.nii.gz)")
    p.add_argument("--output", required=True, metavar="PATH",
                   help="output .nii/.nii.gz for one input file; a folder for a folder input "
                   "or --grid")
    add_corruption_arguments(p)
    p.add_argument("--grid", action="store_true",
                   help="write all 81 seed combinations (A 2,5,8; f 12,15,18; R 2,4,6; SNR "
                   "15,20,25) instead of one parameter set")
    p.add_argument("--axis", type=int, default=0, choices=(0, 1, 2),
                   help="array axis to slice along; rows of a slice are phase-encode lines "
                   "(default 0: sagittal in RAS, as in training)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="slices per device call (default 16)")
    p.add_argument("--center-fraction", type=float, default=0.08,
                   help="fully sampled centre fraction of lines (default 0.08)")
    p.add_argument("--save-kspace", action="store_true",
                   help="also write <name>_kspace.npz: clean and corrupted k-space (complex64), "
                   "line masks, breathing trace and displacement")
    p.add_argument("--save-trace", action="store_true",
                   help="also write <name>_trace.csv: trace and displacement per slice and line")
    p.add_argument("--preview", metavar="PNG",
                   help="write a preview figure of the middle slice of the first output")
    p.add_argument("--dtype", default="input", choices=("input", "float32"),
                   help="output data type: the input's (default) or float32")
    p.add_argument("--pattern", help="glob for volumes under a folder --input (default: BIDS "
                   "sub-*/anat/sub-*_T2w.nii*, else every .nii/.nii.gz)")
    p.add_argument("--verbose", "-v", action="store_true", help="log each file written")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose)

    def body() -> None:
        from kmri_jax.tasks import simulate

        use_compilation_cache()

        params = simulate.SimParams(args.amplitude, args.rate, args.acceleration, args.snr)
        done = simulate.simulate(
            args.input, args.output, params=params, grid=args.grid, method=args.method,
            tr=args.tr, te=args.te, seed=args.seed, axis=args.axis, batch_size=args.batch_size,
            center_fraction=args.center_fraction, save_kspace_files=args.save_kspace,
            save_trace=args.save_trace, preview=args.preview, output_dtype=args.dtype,
            pattern=args.pattern)
        print(f"{PROG}: wrote {len(done)} corrupted volume(s)"
              + (f" under {args.output}" if len(done) > 1 else f": {done[0].output}"))

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
