"""``kmri-infer``: correct a NIfTI volume with a trained checkpoint.

Examples::

    # corrupt a clean volume here (A, f, R, SNR as kmri-simulate) and correct it; metrics printed
    kmri-infer --checkpoint runs/quickstart --input sub-01_T2w.nii.gz \\
        --output sub-01_corrected.nii.gz -A 8 --figure sub-01_infer.png
    # correct k-space saved by kmri-simulate --save-kspace
    kmri-infer --checkpoint runs/quickstart --kspace sub-01_corrupted_kspace.npz \\
        --output sub-01_corrected.nii.gz

Also ``python -m kmri_jax.cli.infer``. Exit status: 0 ok, 1 bad input (one-line message on
stderr, no output files left), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kmri_jax.cli.common import (add_corruption_arguments, configure_logging, run_command,
                                 use_compilation_cache)

PROG = "kmri-infer"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Correct breathing-motion-corrupted "
                                "k-space of a NIfTI volume with a trained U-Net checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="training workdir (latest step), or <workdir>/checkpoints/<step>")
    p.add_argument("--step", type=int, help="checkpoint step in a workdir (default: latest)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="NIFTI",
                     help="clean volume: corrupted here, then corrected; it is the reference")
    src.add_argument("--kspace", metavar="NPZ",
                     help="corrupted k-space written by kmri-simulate --save-kspace")
    p.add_argument("--output", required=True, metavar="NIFTI",
                   help="corrected magnitude volume (.nii/.nii.gz; the input's affine/header)")
    add_corruption_arguments(p, when="with --input: ", method_default=None)
    p.add_argument("--axis", type=int, choices=(0, 1, 2),
                   help="with --input: slicing axis (default: the checkpoint's data.axis)")
    p.add_argument("--fit", choices=("error", "pad"), default="error",
                   help="slices of another size than the model's training size: error "
                   "(default), or pad = centre-crop/zero-pad to it (with a warning)")
    p.add_argument("--normalize", choices=("auto", "clean", "corrupted"), default="auto",
                   help="network input scale s = max|K|: of the clean k-space (the seed's) or "
                   "of the corrupted one; auto = clean with --input, corrupted with --kspace")
    p.add_argument("--batch-size", type=int, default=8, help="slices per device call")
    p.add_argument("--figure", metavar="PNG", help="corrupted / corrected / ground truth figure")
    p.add_argument("--metrics-csv", metavar="CSV", help="per-slice SSIM/PSNR/NRMSE (needs a "
                   "clean reference)")
    p.add_argument("--dtype", default="input", choices=("input", "float32"),
                   help="output data type: the input's (default) or float32")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose)

    def body() -> None:
        from kmri_jax.tasks import infer, simulate

        use_compilation_cache()

        result = infer.infer(
            args.checkpoint, args.output, input_path=args.input, kspace_path=args.kspace,
            params=simulate.SimParams(args.amplitude, args.rate, args.acceleration, args.snr),
            method=args.method, tr=args.tr, te=args.te, seed=args.seed, step=args.step,
            axis=args.axis, fit=args.fit, normalize=args.normalize, batch_size=args.batch_size,
            figure=args.figure, metrics_csv=args.metrics_csv, output_dtype=args.dtype)
        print(f"{PROG}: wrote {result.output}" + (f" and {result.figure}" if result.figure else ""))
        for line in infer.summary_lines(result):
            print(f"  {line}")

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
