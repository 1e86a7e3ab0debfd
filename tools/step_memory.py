"""Memory of the compiled train step at the seed's size: XLA's memory analysis and FLOPs of the
seed's step (U-Net forward + backward + Adam, corruption inside) in float32 and bfloat16, with
and without ``model.remat``, on the backend JAX runs on.

On the CPU this is XLA:CPU's buffer assignment, an estimate of what a GPU compile needs (GPU
fusion and layouts differ; run it on the card for its own figure). Nothing is executed.

    python tools/step_memory.py --ny 424 --nx 736 --batch 32 --json runs/step_memory.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cost_flops, ensure_bench_store, machine_info, memory_bytes, train_setup  # noqa: E402

CARDS_GB = {"H100 80 GB": 80, "H200 141 GB": 141}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ny", type=int, default=424)
    ap.add_argument("--nx", type=int, default=736)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--conv", choices=("lax", "im2col"), default="lax", help="model.conv")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from kmri_jax import data as kdata

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = kdata.SliceStore(ensure_bench_store(Path(tmp), args.ny, args.nx, args.batch))
        batch = next(kdata.train_iterator(store, batch_size=args.batch, seed=0))
        for dtype in ("float32", "bfloat16"):
            for remat in (False, True):
                state, _, fn, _ = train_setup(args.ny, args.nx, args.batch, dtype, remat=remat,
                                              conv=args.conv)
                t0 = time.perf_counter()
                compiled = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
                mem = memory_bytes(compiled) or {}
                total = sum(mem.get(k, 0) for k in ("argument_size_in_bytes",
                                                    "output_size_in_bytes",
                                                    "temp_size_in_bytes"))
                row = {"dtype": dtype, "remat": remat, "flops": cost_flops(compiled),
                       "memory": mem, "total_bytes": total,
                       "compile_s": time.perf_counter() - t0}
                row["fits"] = {card: total < gb * 1e9 for card, gb in CARDS_GB.items()}
                rows.append(row)
                print(f"{dtype:9s} remat={remat!s:5s} temp {mem.get('temp_size_in_bytes', 0) / 1e9:6.1f} GB"
                      f"  args+out+temp {total / 1e9:6.1f} GB  {row['flops'] / 1e12:6.2f} TFLOP  "
                      f"fits {row['fits']}", flush=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info(), "backend": jax.default_backend(), "ny": args.ny,
              "nx": args.nx, "batch": args.batch, "rows": rows, "command": " ".join(sys.argv)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
