"""Benchmark: the simulator's realism options beside the seed's path, in one run.

For each option set, ``jit(vmap(corrupt))`` on a batch of ``--ny x --nx`` slices: samples/s
(median of ``--repeats`` after warm-up; skipped with ``--no-time``) and XLA's cost analysis
(FLOPs, temporaries), and the share of a training step that the corruption is, from the FLOPs
of the seed's compiled train step (U-Net forward + backward + Adam) at the same size.

    python tools/bench_realism.py --ny 424 --nx 736 --batch 32 --json runs/bench_realism.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (block, cost_flops, ensure_bench_store, machine_info,  # noqa: E402
                          memory_bytes, rate_summary, timed, train_setup)

from kmri_jax import sim  # noqa: E402


def cases(states: list[int], coils: list[int]) -> list[tuple[str, dict, dict, tuple[str, ...]]]:
    """(name, corrupt options, extra params, array inputs) of every measured option set.

    The array inputs name which of ``weight_map``, ``field_map`` and ``coil_maps`` are passed.
    """
    tse = dict(echo_train_length=16, echo_spacing=0.01, time_acquired_only=True)
    rot = dict(amplitude_pe_px=3.0, rotation_deg=4.0)
    out = [("seed (sequential, ETL 1, readout translation)", {}, {}, ()),
           ("segmented, ETL 16, 10 ms", dict(ordering="segmented", **tse), {}, ()),
           ("centric, ETL 16, 10 ms", dict(ordering="centric", **tse), {}, ()),
           ("2-D translation (A_pe 3 px)", {}, dict(amplitude_pe_px=3.0), ())]
    for k in states:
        out.append((f"rotation 4 deg, {k} states", dict(motion_states=k), rot, ()))
    for k in states:
        out.append((f"weight map + rotation, {k} states", dict(motion_states=k), rot,
                    ("weight_map",)))
    out.append(("B0 5 Hz, uniform field", {}, dict(b0_hz=5.0), ()))
    bw = dict(readout_bandwidth_hz_per_px=200.0)
    for k in states:
        out.append((f"B0 5 Hz, lungs field map + bandwidth, {k} states",
                    dict(motion_states=k, **bw), dict(b0_hz=5.0), ("field_map",)))
    for c in coils:
        out.append((f"{c} coils, {states[0]} states", dict(motion_states=states[0]), {},
                    ("coil_maps",)))
    c = coils[-1]
    out.append((f"{c} coils + B0 field map + rotation, {states[0]} states",
                dict(motion_states=states[0], **bw), dict(b0_hz=5.0, **rot),
                ("field_map", "coil_maps")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ny", type=int, default=424)
    ap.add_argument("--nx", type=int, default=736)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--states", default="8,16,32")
    ap.add_argument("--coils", default="1,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-time", action="store_true", help="cost analysis only")
    ap.add_argument("--no-train-step", action="store_true", help="skip the train step's FLOPs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ny, nx, b = args.ny, args.nx, args.batch
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((b, ny, nx)), jnp.float32)
    keys = jax.random.split(jax.random.key(0), b)
    seed_params = sim.sample_params(jax.random.key(1), b)
    weight = jnp.asarray(sim.breathing_weight_map((ny, nx), reference_px=0.4 * nx, decay_mm=50.0,
                                                  spacing_mm=0.8))
    field = jnp.asarray(sim.breathing_field_map((ny, nx), lung_px=(0.45 * nx, 0.8 * nx)))
    n_coils = [int(c) for c in args.coils.split(",")]
    maps = {c: jnp.asarray(sim.coil_maps((ny, nx), n_coils=c)) for c in n_coils}

    step_flops = None
    if not args.no_train_step:
        with tempfile.TemporaryDirectory() as tmp:
            from kmri_jax import data as kdata

            store = kdata.SliceStore(ensure_bench_store(Path(tmp), ny, nx, b))
            batch = next(kdata.train_iterator(store, batch_size=b, seed=0))
            state, _, fn, _ = train_setup(ny, nx, b, "float32")
            step_flops = cost_flops(jax.jit(fn).lower(state, batch).compile())

    rows = []
    for name, options, extra, inputs in cases([int(k) for k in args.states.split(",")], n_coils):
        params = seed_params._replace(**{k: jnp.full((b,), v, jnp.float32)
                                         for k, v in extra.items()})
        # What a case leaves at 0 is a static Python 0, as kmri-train passes it: no extra work.
        params = params._replace(**{f: 0.0 for f in sim.MotionGrid._fields if f not in extra})
        arrays = {"weight_map": weight, "field_map": field,
                  "coil_maps": maps[int(name.split()[0])] if "coil_maps" in inputs else None}
        w = {k: v for k, v in arrays.items() if k in inputs}
        fn = jax.jit(jax.vmap(lambda k, x, p, w_: sim.corrupt(k, x, p, **w_, **options),
                              in_axes=(0, 0, 0, None)))
        compiled = fn.lower(keys, images, params, w).compile()
        flops = cost_flops(compiled)
        row = {"case": name, "options": options, "params": extra, "inputs": list(inputs),
               "flops_per_batch": flops, "memory": memory_bytes(compiled),
               "share_of_train_step_flops": (flops / (flops + step_flops)
                                             if flops and step_flops else None)}
        if not args.no_time:
            row.update(rate_summary(timed(lambda: block(compiled(keys, images, params, w)),
                                          args.repeats, args.warmup), b))
        rows.append(row)
        rate = row.get("samples_per_s_median")
        print(f"{name:55s} {'' if rate is None else f'{rate:9.1f} samples/s'}  "
              f"{(flops or 0) / b / 1e9:7.3f} GFLOP/sample  share "
              f"{row['share_of_train_step_flops'] or float('nan'):.4f}", flush=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info(), "backend": jax.default_backend(),
              "device_kind": jax.devices()[0].device_kind, "ny": ny, "nx": nx, "batch": b,
              "train_step_flops_per_batch": step_flops, "cases": rows,
              "command": " ".join(sys.argv)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
