"""``kmri-evaluate``: a checkpoint on a split over the corruption grid -> CSV tables, a summary
and figures.

Examples::

    # a prepared store (kmri-prepare, or a training workdir's store/)
    kmri-evaluate --checkpoint runs/quickstart --store runs/quickstart/store \\
        --output reports/quickstart
    # a dataset, prepared here with the checkpoint's preprocessing and split rule
    kmri-evaluate --checkpoint runs/seed_replica --data-root ds005616 \\
        --splits ds005616/splits.json --output reports/seed_replica --combinations orthogonal

Also ``python -m kmri_jax.cli.evaluate``. Exit status: 0 ok, 1 bad input (one-line message on
stderr, no report files left), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kmri_jax.cli.common import configure_logging, run_command, use_compilation_cache

PROG = "kmri-evaluate"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Evaluate a checkpoint on a split over "
                                "the corruption grid: SSIM/PSNR/NRMSE of the corrupted input, "
                                "the oracle bound, the training-free motion estimate and the "
                                "network, side by side.")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="training workdir (latest step), or <workdir>/checkpoints/<step>")
    p.add_argument("--step", type=int, help="checkpoint step in a workdir (default: latest)")
    p.add_argument("--store", metavar="DIR", help="prepared slice store; with --data-root: "
                   "where to prepare it (default <output>/store)")
    p.add_argument("--data-root", metavar="DIR", help="BIDS/NIfTI dataset to prepare with the "
                   "checkpoint's preprocessing and split rule")
    p.add_argument("--splits", metavar="JSON", help="with --data-root: splits.json to use "
                   "(default: the checkpoint's data.splits_file, else its data.split_seed)")
    p.add_argument("--output", required=True, metavar="DIR", help="report folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split to evaluate (default test)")
    p.add_argument("--combinations", default="all", metavar="SPEC",
                   help="grid combinations per slice: all (81, default), orthogonal (the "
                   "balanced 9), or indices like 0,40,80")
    p.add_argument("--methods", default="input,oracle,estimate,model", metavar="LIST",
                   help="methods side by side on the same corruption: input (corrupted), "
                   "oracle (true motion undone, zero-filled), estimate (estimate_motion + "
                   "undo, zero-filled), model (the checkpoint's network); default all")
    p.add_argument("--batch-size", type=int,
                   help="samples per device call (default: the checkpoint's eval.batch_size)")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.store and not args.data_root:
        parser.error("give --store DIR (a prepared slice store) or --data-root DIR")
    configure_logging(args.verbose)

    def body() -> None:
        from kmri_jax.tasks import evaluate

        use_compilation_cache()

        result = evaluate.evaluate(
            args.checkpoint, args.output, store=args.store, data_root=args.data_root,
            splits=args.splits, split=args.split, combinations=args.combinations,
            methods=args.methods,
            batch_size=args.batch_size, step=args.step)
        print(f"{PROG}: wrote {len(result.files)} files to {result.output}")
        for line in evaluate.summary_lines(result):
            print(f"  {line}")

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
