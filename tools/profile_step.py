"""Where the train step's time goes (docs/profile.md): per-stage timing of separately compiled
pieces (corruption, forward, forward + backward, the step without corruption, Adam, the full
step) on the same inputs, a census of the step's optimised HLO, a check that steady-state steps
neither recompile nor transfer, and optionally a profiler trace summed by op kind.

    python tools/profile_step.py --config 128x128:8 --trace-dir runs/trace --json runs/profile.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (ROOT, block, cost_flops, ensure_bench_store, parse_config,  # noqa: E402
                          train_setup)


def profile(args: argparse.Namespace, ny: int, nx: int, batch: int) -> dict:
    """Times corruption, forward, forward+backward, step without corruption, and the full step
    (separately compiled, same inputs); counts ops in the step's optimised HLO; checks that
    steady-state steps neither recompile nor transfer to/from the host."""
    import jax
    import jax.numpy as jnp

    from kmri_jax import data as kdata
    from kmri_jax.train import losses, sharding
    from kmri_jax.train.corruption import Corruption
    from kmri_jax.train.networks import channels, input_scale
    from kmri_jax.train.state import run_model

    store = kdata.SliceStore(ensure_bench_store(args.store_root / f"store-{ny}x{nx}", ny, nx, batch))
    host = next(kdata.train_iterator(store, batch_size=batch, seed=0))
    state, defs, fn, mesh = train_setup(ny, nx, batch, args.dtype)
    state = sharding.replicate(state, mesh)
    dev = sharding.shard_batch(host, mesh)
    loss_fn = losses.get_loss("seed_masked_l1")
    tx_update = fn  # the full step

    def corrupt(batch_):
        c = Corruption().corrupt_batch(jax.random.key(0), batch_, mode="fresh")[0]
        s = input_scale(c, "clean")  # the seed's normalisation, as the PyTorch reference
        return channels(c.kspace, s), channels(c.clean, s)

    x, y = jax.jit(corrupt)(dev)

    def forward(st, x, y, valid):
        pred, _ = run_model(defs, st.params, st.batch_stats, lambda m: m(x), train=True)
        return loss_fn(pred, y, valid)

    def fwd_bwd(st, x, y, valid):
        def obj(p):
            pred, bs = run_model(defs, p, st.batch_stats, lambda m: m(x), train=True)
            return loss_fn(pred, y, valid), bs
        return jax.value_and_grad(obj, has_aux=True)(st.params)

    # The step without the corruption: the full step on a batch whose corruption is replaced by
    # the precomputed (x, y). Built from the same pieces as make_train_step.
    import optax

    from kmri_jax.train.state import learning_rate_schedule
    schedule = learning_rate_schedule(learning_rate=1e-3, end_learning_rate=1e-6,
                                      total_steps=10_000, steps_per_epoch=100, per_epoch=False)
    tx = optax.adam(schedule)

    def step_no_corrupt(st, x, y, valid):
        (loss, bs), grads = fwd_bwd(st, x, y, valid)
        updates, opt_state = tx.update(grads, st.opt_state, st.params)
        return st._replace(step=st.step + 1, params=optax.apply_updates(st.params, updates),
                           batch_stats=bs, opt_state=opt_state), loss

    def adam_only(st, grads):
        updates, opt_state = tx.update(grads, st.opt_state, st.params)
        return optax.apply_updates(st.params, updates), opt_state

    valid = dev["valid_shape"]
    grads = jax.tree.map(jnp.ones_like, state.params)
    stages = {
        "corruption (simulator + network input)": (jax.jit(corrupt), (dev,)),
        "forward + loss": (jax.jit(forward), (state, x, y, valid)),
        "forward + backward": (jax.jit(fwd_bwd), (state, x, y, valid)),
        "Adam update alone": (jax.jit(adam_only), (state, grads)),
        "step without corruption": (jax.jit(step_no_corrupt), (state, x, y, valid)),
        "full train step": (jax.jit(tx_update), (state, dev)),
    }
    # Compile every stage, then time them round-robin (one call of each per repeat), so the
    # load of a shared machine falls on all stages alike.
    compiled: dict[str, Any] = {}
    table: dict[str, dict] = {}
    for name, (f, a) in stages.items():
        t0 = time.perf_counter()
        compiled[name] = f.lower(*a).compile()
        table[name] = {"compile_s": time.perf_counter() - t0,
                       "gflop": (cost_flops(compiled[name]) or 0) / 1e9, "times": []}
        block(compiled[name](*a))
    for _ in range(args.repeats):
        for name, (_, a) in stages.items():
            t = time.perf_counter()
            block(compiled[name](*a))
            table[name]["times"].append(time.perf_counter() - t)
    for name, row in table.items():
        times = row.pop("times")
        row.update(median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times),
                   max_ms=1e3 * max(times))
        print(f"  {name:<40} {row['median_ms']:9.1f} ms  (min {row['min_ms']:.1f}, "
              f"max {row['max_ms']:.1f})  {row['gflop']:8.2f} GFLOP  "
              f"compile {row['compile_s']:.1f} s", flush=True)

    # Census of the optimised full step: ops at the top level of the entry computation (what
    # the runtime dispatches one by one) and inside fusions; big transposes; convolutions.
    hlo = compiled["full train step"].as_text()
    top, fused = Counter(), Counter()
    in_entry = False
    op_re = re.compile(r"=\s+(?:\([^()]*\)|\S+)\s+([a-z][a-z0-9-]*)\(")
    for line in hlo.splitlines():
        if line and not line.startswith(" "):
            in_entry = line.startswith("ENTRY")
            continue
        m = op_re.search(re.sub(r"/\*.*?\*/", "", line))
        if m:
            (top if in_entry else fused)[m.group(1)] += 1
    # Steady state: no retrace/recompile, no implicit host transfers.
    jitted = jax.jit(tx_update, donate_argnums=0)
    st = state
    st, m = jitted(st, dev)
    block(m)
    with jax.transfer_guard("disallow"):
        for _ in range(2):
            st, m = jitted(st, dev)
    block(m)
    cache_size = jitted._cache_size() if hasattr(jitted, "_cache_size") else None
    by_kind = trace_by_kind(jitted, st, dev, args.trace_dir) if args.trace_dir else None
    census = {"entry_ops": dict(top.most_common()),
              "ops_in_other_computations": dict(fused.most_common(25))}
    print("  optimised HLO, ops in the entry computation:", dict(top.most_common(15)))
    print("  ops in fused/called computations:", dict(fused.most_common(15)))
    print("  jit cache entries after 3 steps:", cache_size, "; transfer guard: no host transfers")
    if args.hlo_out:
        Path(args.hlo_out).write_text(hlo)
        print(f"  wrote {args.hlo_out}")
    return {"stages": table, "hlo": census, "jit_cache_entries": cache_size,
            "trace_ms_per_step_by_kind": by_kind}


def trace_by_kind(step: Any, state: Any, batch: Any, trace_dir: Path, steps: int = 2) -> dict:
    """``jax.profiler`` trace of ``steps`` steady-state steps; XLA op events on the XLA worker
    threads summed by op kind (the fusion name without its number), in ms of thread time per
    step. Prints the table."""
    import jax

    trace_dir.mkdir(parents=True, exist_ok=True)
    with jax.profiler.trace(str(trace_dir)):
        for _ in range(steps):
            state, m = step(state, batch)
        block(m)
    path = max(trace_dir.rglob("*.xplane.pb"), key=lambda f: f.stat().st_mtime)
    kinds: Counter = Counter()
    for plane in jax.profiler.ProfileData.from_file(str(path)).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA") or "PjRtCpuClient" in line.name:
                continue
            for ev in line.events:
                if ev.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
                    continue
                kinds[re.sub(r"\.\d+$", "", ev.name)] += ev.duration_ns / 1e6 / steps
    total = sum(kinds.values()) or 1.0
    print(f"  trace: XLA op time per step by kind ({path}):")
    for name, ms in kinds.most_common(15):
        print(f"    {ms:9.1f} ms  {100 * ms / total:5.1f}%  {name}")
    return dict(kinds.most_common())


def main() -> None:
    from kmri_jax.train import runtime
    runtime.configure_cpu_allocator("auto")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=parse_config, default=(128, 128, 8), metavar="HxW:B")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store-root", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--hlo-out", type=Path, default=None, help="write the step's optimised HLO")
    ap.add_argument("--trace-dir", type=Path, default=None,
                    help="also record a profiler trace there and sum its device time by op kind")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = ap.parse_args()
    ny, nx, b = args.config
    print(f"== profile {ny}x{nx}, batch {b}, {args.dtype}, {args.repeats} repeats", flush=True)
    out = profile(args, ny, nx, b)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
