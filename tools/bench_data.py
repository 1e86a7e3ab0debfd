"""Data pipeline throughput: slices/s delivered as batches, from .nii.gz directly vs from the
prepared slice store, at 424 x 736 (the seed's slice size).

    .venv/bin/python tools/bench_data.py --json runs/bench_data.json

Generates a phantom BIDS dataset in a temp dir (--subjects x --slices sagittal slices of
424 x 736), prepares a store, then times each pipeline variant: --repeats runs of --batches
batches each (after one warm-up batch per run), and prints a table of median and min..max
slices/s; the JSON holds every run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from kmri_jax.data import (PreprocessOptions, SliceStore, VolumeSource, build_store,
                           train_iterator, write_phantom_dataset)


def time_iterator(make, batches: int, batch_size: int) -> float:
    it = make()
    try:
        next(it)                                  # warm-up: workers start, first read
        t0 = time.perf_counter()
        for _ in range(batches):
            b = next(it)
            assert b["image"].shape[0] == batch_size
        return batches * batch_size / (time.perf_counter() - t0)
    finally:
        if hasattr(it, "close"):
            it.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=8)
    p.add_argument("--slices", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--nifti-batches", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    opts = PreprocessOptions()                    # 424 x 736
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_phantom_dataset(Path(tmp) / "ds", n_subjects=args.subjects,
                                     shape=(args.slices, opts.ny, opts.nx), seed=0)
        t0 = time.perf_counter()
        build_store(root, Path(tmp) / "store", options=opts)
        prepare_s = time.perf_counter() - t0
        store = SliceStore(Path(tmp) / "store")
        bs = args.batch_size
        variants = {
            "store, in-process, no prefetch": (lambda: train_iterator(
                store, batch_size=bs, seed=0, read_threads=0), args.batches),
            "store, 1 read thread, prefetch 2": (lambda: train_iterator(
                store, batch_size=bs, seed=0, read_threads=1, prefetch=2), args.batches),
            "store, 2 read threads, prefetch 4": (lambda: train_iterator(
                store, batch_size=bs, seed=0, read_threads=2, prefetch=4), args.batches),
            "store, 2 worker processes": (lambda: train_iterator(
                store, batch_size=bs, seed=0, worker_count=2, prefetch=2), args.batches),
            ".nii.gz direct, cache 4 volumes": (lambda: train_iterator(
                VolumeSource(root, options=opts, cache_volumes=4), batch_size=bs, seed=0,
                read_threads=0), args.nifti_batches),
            ".nii.gz direct, cache 1 volume": (lambda: train_iterator(
                VolumeSource(root, options=opts, cache_volumes=1), batch_size=bs, seed=0,
                read_threads=0), args.nifti_batches),
        }
        for name, (make, n) in variants.items():
            runs = [time_iterator(make, n, bs) for _ in range(args.repeats)]
            results.append({"variant": name, "batches_per_run": n, "slices_per_s": runs,
                            "median": statistics.median(runs), "min": min(runs),
                            "max": max(runs)})
            r = results[-1]
            print(f"{name:36s} {r['median']:9.0f} slices/s  ({r['min']:.0f}..{r['max']:.0f})",
                  flush=True)
    out = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "slice_shape": [opts.ny, opts.nx], "batch_size": bs, "store_slices": len(store),
        "train_slices": int(len(store.indices("train"))), "prepare_s": prepare_s,
        "repeats": args.repeats, "results": results,
    }
    print(f"prepare: {prepare_s:.1f} s for {len(store)} slices")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
