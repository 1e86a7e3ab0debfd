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
    r = p.add_argument_group("acquisition and motion realism (docs/realism.md; defaults: the "
                             "seed's model)")
    r.add_argument("--ordering", default="sequential",
                   choices=("sequential", "segmented", "centric"),
                   help="phase-encode order of the lines in the echo trains")
    r.add_argument("--etl", type=int, default=1, metavar="N",
                   help="echo train length: lines per TR (turbo factor; default 1)")
    r.add_argument("--echo-spacing", type=float, default=0.0, metavar="S",
                   help="seconds between the echoes of a train (default 0)")
    r.add_argument("--time-acquired-only", action="store_true",
                   help="skipped lines take no scan time (the seed times every line)")
    r.add_argument("--amplitude-pe", type=float, default=0.0, metavar="PX",
                   help="peak breathing displacement along the phase-encode axis (default 0)")
    r.add_argument("--rotation", type=float, default=0.0, metavar="DEG",
                   help="peak in-plane rotation in degrees (needs --motion-states)")
    r.add_argument("--motion-states", type=int, default=0, metavar="K",
                   help="image resamplings per slice for --rotation and --weight-reference "
                   "(e.g. 16; default 0: translations only, exact)")
    r.add_argument("--weight-reference", type=float, metavar="FRACTION",
                   help="distance-weighted displacement: 1 at this level (fraction of the "
                   "--weight-axis), decaying away from it (needs --motion-states)")
    r.add_argument("--weight-axis", type=int, default=1, choices=(0, 1),
                   help="0: rows (phase encode), 1: columns (readout; default)")
    r.add_argument("--weight-decay-mm", type=float, default=50.0, metavar="MM",
                   help="decay length of the weight map in mm (default 50)")
    r.add_argument("--weight-spacing-mm", type=float, default=1.0, metavar="MM",
                   help="pixel size along --weight-axis in mm (default 1)")
    f = p.add_argument_group("breathing B0 and receive coils (docs/realism.md; defaults: none, "
                             "one ideal coil, as the seed)")
    f.add_argument("--b0", type=float, default=0.0, metavar="HZ",
                   help="peak breathing-induced off-resonance in Hz (e.g. 5 near the lungs at 3T)")
    f.add_argument("--field-map", choices=("lungs",),
                   help="spatial field map: 1 at the lungs' edges, decaying along the spine "
                   "(needs --motion-states); default: the same off-resonance everywhere")
    f.add_argument("--field-lungs", type=float, nargs=2, default=(0.5, 0.78),
                   metavar=("LOW", "HIGH"),
                   help="the lungs' edges as fractions of --field-axis (default: phantom v2's)")
    f.add_argument("--field-axis", type=int, default=1, choices=(0, 1),
                   help="0: rows, 1: columns (default, the readout along the spine)")
    f.add_argument("--field-decay-mm", type=float, default=60.0, metavar="MM")
    f.add_argument("--field-spacing-mm", type=float, default=1.0, metavar="MM",
                   help="pixel size along --field-axis in mm (default 1)")
    f.add_argument("--bandwidth", type=float, metavar="HZ_PER_PX",
                   help="readout bandwidth: the off-resonance also shifts each line along the "
                   "readout by b0 r f / bandwidth px")
    f.add_argument("--coils", type=int, default=0, metavar="C",
                   help="C receive coils (analytic maps, needs --motion-states); the NIfTI holds "
                   "their root-sum-of-squares image")
    f.add_argument("--coil-correlation", type=float, default=0.0, metavar="RHO",
                   help="noise correlation between every pair of coils, in [0, 1)")
    f.add_argument("--noise-rng", choices=("fused", "jax"), default="fused",
                   help="how the noise is drawn: 'fused' (fast) or 'jax' (jax.random.normal, "
                   "the numbers of kmri_jax before 2026-12-03); same statistics")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose)

    def body() -> None:
        from kmri_jax.tasks import simulate

        use_compilation_cache()

        from kmri_jax import sim
        from kmri_jax.tasks.errors import TaskError
        from kmri_jax.train.corruption import Coils, FieldMap, WeightMap

        params = simulate.SimParams(args.amplitude, args.rate, args.acceleration, args.snr,
                                    args.amplitude_pe, args.rotation, args.b0)
        acquisition = sim.CorruptOptions(
            ordering=args.ordering, echo_train_length=args.etl, echo_spacing=args.echo_spacing,
            time_acquired_only=args.time_acquired_only, motion_states=args.motion_states,
            readout_bandwidth_hz_per_px=args.bandwidth, noise_rng=args.noise_rng)
        if args.coils < 0 or not 0 <= args.coil_correlation < 1:
            raise TaskError(f"--coils must be >= 0 and --coil-correlation in [0, 1); got "
                            f"{args.coils} and {args.coil_correlation:g}")
        if args.coil_correlation and not args.coils:
            raise TaskError("--coil-correlation needs --coils C")
        if args.bandwidth is not None and not (args.bandwidth > 0):
            raise TaskError(f"--bandwidth must be > 0 Hz per pixel; got {args.bandwidth:g}")
        field_map = None if args.field_map is None else FieldMap(
            lungs=tuple(args.field_lungs), axis=args.field_axis,
            decay_mm=args.field_decay_mm, spacing_mm=args.field_spacing_mm)
        coils = Coils(args.coils, args.coil_correlation) if args.coils else None
        weight_map = None if args.weight_reference is None else WeightMap(
            reference=args.weight_reference, axis=args.weight_axis,
            decay_mm=args.weight_decay_mm, spacing_mm=args.weight_spacing_mm)
        done = simulate.simulate(
            args.input, args.output, params=params, grid=args.grid, method=args.method,
            tr=args.tr, te=args.te, seed=args.seed, axis=args.axis, batch_size=args.batch_size,
            center_fraction=args.center_fraction, save_kspace_files=args.save_kspace,
            save_trace=args.save_trace, preview=args.preview, output_dtype=args.dtype,
            pattern=args.pattern, acquisition=acquisition, weight_map=weight_map,
            field_map=field_map, coils=coils)
        print(f"{PROG}: wrote {len(done)} corrupted volume(s)"
              + (f" under {args.output}" if len(done) > 1 else f": {done[0].output}"))

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
