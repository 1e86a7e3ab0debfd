"""Training throughput benchmark (issue 6): kmri_jax vs a PyTorch reference of the seed, one run.

For each ``HxW:B`` configuration, on the same machine, in one run:

- **simulator**: samples/s of the corruption as the train step does it (``Corruption.corrupt_batch``
  in ``fresh`` mode + the network input, jit + vmap), and its share of a train step;
- **train step**: samples/s of ``make_train_step`` (fresh on-device corruption, the seed's masked
  L1, Adam with the cosine schedule, the seed's plain U-Net) on a device-resident batch, on the
  devices ``kmri-train`` would use (one GPU; on CPU one XLA device per core dividing the batch,
  ``--cpu-devices``), and then also on one CPU device in the same rounds;
- **PyTorch reference** (``tools/torch_reference.py``): the same architecture, masked L1 and Adam,
  ``torch.set_num_threads(--torch-threads)``; once on inputs corrupted beforehand (model step
  only) and once corrupting every batch per sample with NumPy first, as the seed's data loader
  did (serial, in the timed loop);
- **end to end**: samples/s from a prepared phantom store (``kmri_jax.data.ensure_store``) through
  the Grain ``train_iterator``, ``shard_batch`` and the step, against step-only in the same
  process (input-pipeline overhead);
- **FLOPs**: per step from XLA's cost analysis of the compiled step, achieved GFLOP/s, and MFU
  against ``--peak-tflops`` (defaults for known GPUs by device kind and ``--dtype``).

Then **scaling** of the train step over 1, 2, 4, 8 devices at a fixed global batch (one
subprocess per device count; on CPU the devices are fake, ``--xla_force_host_platform_device_
count=N`` over the same cores, so the table shows partitioning overhead, not speed-up).

Every figure is the median over ``--repeats`` timed repeats after ``--warmup`` repeats, with
min-max. JAX and PyTorch run in separate worker processes, timed round-robin (one repeat of each
per round) so that the load of a shared machine falls on both alike (``--sequential`` runs them
one after the other instead, for memory). Runs unchanged on a GPU machine (JAX GPU backend,
torch CUDA when available).

    python tools/benchmark.py --configs 256x256:8 --json runs/bench/train.json --append-doc
    python tools/benchmark.py --configs 424x736:32 --dtype bfloat16 --append-doc   # on a GPU
    python tools/profile_step.py --config 128x128:8 --trace-dir runs/trace   # docs/profile.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (ROOT, block, cost_flops, ensure_bench_store,  # noqa: E402
                          machine_info, memory_bytes, parse_config, spread,
                          synthetic_host_batch, train_setup)

# Peak dense FLOP/s (TFLOP/s) by device kind substring and compute dtype; H200 = H100 compute.
PEAK_TFLOPS = {
    "H100": {"bfloat16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float32": 19.5},
}


# ------------------------------------------------------------------------------------------------
# The JAX side: simulator, train step, end to end (one process, one compiled step)


def jax_worker(conn: Any, cfg: dict) -> None:
    """Worker process: set up, warm up, report facts; then one timed round per ``"round"``."""
    import jax
    import numpy as np

    from kmri_jax import data as kdata
    from kmri_jax.train import runtime, sharding
    from kmri_jax.train.corruption import Corruption
    from kmri_jax.train.networks import channels, input_scale

    ny, nx, b, k = cfg["ny"], cfg["nx"], cfg["batch"], cfg["steps_per_repeat"]
    # As kmri-train does: on the CPU backend, glibc's malloc keeps freed memory ("auto"), and
    # one XLA device per core (0 = that policy).
    malloc_kept = runtime.configure_cpu_allocator(cfg["cpu_malloc"])
    runtime.configure_cpu_devices(cfg["cpu_devices"], batch_sizes=(b,))
    devices = jax.device_count() if jax.default_backend() == "cpu" else 1  # one card on GPU
    store = kdata.SliceStore(ensure_bench_store(Path(cfg["store_dir"]), ny, nx, b))
    it = kdata.train_iterator(store, batch_size=b, seed=0)
    host_batch = next(it)
    state, _, fn, mesh = train_setup(ny, nx, b, cfg["dtype"], devices=devices,
                                     conv=cfg.get("conv", "lax"))
    state = sharding.replicate(state, mesh)
    dev_batch = sharding.shard_batch(host_batch, mesh)

    info: dict[str, Any] = {"device_kind": jax.devices()[0].device_kind,
                            "backend": jax.default_backend(), "device_count": jax.device_count(),
                            "step_devices": devices, "malloc_kept": malloc_kept}
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0).lower(state, dev_batch).compile()
    info["step_compile_s"] = time.perf_counter() - t0
    flops = cost_flops(compiled)  # per device for a partitioned program
    info["step_flops"] = flops * devices if flops is not None else None
    info["step_memory"] = memory_bytes(compiled)

    @jax.jit
    def simulate(i, batch):
        key = jax.random.fold_in(jax.random.key(0), i)
        c = Corruption().corrupt_batch(key, batch, mode="fresh")[0]
        s = input_scale(c, "clean")  # the seed's normalisation, as the PyTorch reference
        return channels(c.kspace, s), channels(c.clean, s)

    sim_compiled = simulate.lower(np.int32(0), dev_batch).compile()
    info["sim_flops"] = cost_flops(sim_compiled)

    box = {"state": state, "i": 0}

    def sim_once() -> float:
        # One untimed call first: the first call after a big train step pays for faulting its
        # freshly allocated buffers back in (6x at 424x736), which is not the simulator's cost.
        block(sim_compiled(np.int32(box["i"]), dev_batch))
        box["i"] += 1
        t = time.perf_counter()
        block(sim_compiled(np.int32(box["i"]), dev_batch))
        return time.perf_counter() - t

    def steps(from_store: bool) -> tuple[float, float]:
        """``k`` steps as the loop runs them (no wait between steps); (seconds, data seconds)."""
        st, data_s = box["state"], 0.0
        t = time.perf_counter()
        for _ in range(k):
            if from_store:
                d = time.perf_counter()
                batch = sharding.shard_batch(next(it), mesh)
                data_s += time.perf_counter() - d
            else:
                batch = dev_batch
            st, metrics = compiled(st, batch)
        block(metrics["loss"])
        box["state"] = st
        return time.perf_counter() - t, data_s

    def one_round() -> dict[str, float]:
        if cfg.get("step_only"):
            return {"step_s": steps(False)[0] / k}
        out = {"sim_s": sim_once()}
        out["step_s"], _ = steps(False)
        out["e2e_s"], out["e2e_data_s"] = steps(True)
        out["step_s"] /= k
        out["e2e_s"] /= k
        out["e2e_data_s"] /= k
        return out

    t0 = time.perf_counter()
    one_round()
    info["first_round_s"] = time.perf_counter() - t0
    for _ in range(cfg["warmup"] - 1):
        one_round()
    conn.send(info)
    while conn.recv() == "round":
        conn.send(one_round())


# ------------------------------------------------------------------------------------------------
# The PyTorch reference


def torch_worker(conn: Any, cfg: dict) -> None:
    import numpy as np

    # The seed runs PyTorch with the C library's allocator; "keep" gives it kmri-train's
    # (before torch starts its threads).
    from kmri_jax.train import runtime
    torch_malloc_kept = runtime.configure_cpu_allocator(cfg["torch_malloc"])
    try:
        import torch
        from torch_reference import SeedTrainStep, numpy_network_io
    except ImportError as e:
        conn.send({"error": f"torch reference unavailable: {e}"})
        return
    from bench_sim import np_corrupt

    from kmri_jax import data as kdata
    from kmri_jax.sim import SEED_GRID

    ny, nx, b, k = cfg["ny"], cfg["nx"], cfg["batch"], cfg["steps_per_repeat"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    step = SeedTrainStep(device=device, dtype=cfg["dtype"], threads=cfg["torch_threads"])
    store = kdata.SliceStore(ensure_bench_store(Path(cfg["store_dir"]), ny, nx, b))
    host = next(kdata.train_iterator(store, batch_size=b, seed=0))
    rng = np.random.default_rng(0)

    def draw_params() -> list[tuple[float, ...]]:
        return [(float(rng.choice(SEED_GRID.amplitude_px)), float(rng.choice(SEED_GRID.rate_bpm)),
                 float(rng.choice(SEED_GRID.acceleration)), float(rng.choice(SEED_GRID.snr_db)),
                 float(host["tr"][i]), float(host["te"][i])) for i in range(b)]

    x_np, y_np = numpy_network_io(rng, host["image"], draw_params(), np_corrupt)
    x, y = step.to_device(x_np), step.to_device(y_np)
    valid = step.to_device(host["valid_shape"].astype(np.int64))

    def model_steps() -> float:
        t = time.perf_counter()
        for _ in range(k):
            step(x, y, valid)
        step.synchronize()
        return (time.perf_counter() - t) / k

    def numpy_steps() -> tuple[float, float]:
        t, corrupt_s = time.perf_counter(), 0.0
        for _ in range(k):
            c = time.perf_counter()
            xs, ys = numpy_network_io(rng, host["image"], draw_params(), np_corrupt)
            corrupt_s += time.perf_counter() - c
            step(step.to_device(xs), step.to_device(ys), valid)
        step.synchronize()
        return (time.perf_counter() - t) / k, corrupt_s / k

    def one_round() -> dict[str, float]:
        out = {"torch_step_s": model_steps()}
        out["torch_numpy_s"], out["numpy_corrupt_s"] = numpy_steps()
        return out

    info = {"torch": torch.__version__, "torch_device": device,
            "torch_device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(), "torch_params": step.n_params(),
            "torch_malloc_kept": torch_malloc_kept}
    for _ in range(cfg["warmup"]):
        one_round()
    conn.send(info)
    while conn.recv() == "round":
        conn.send(one_round())


# ------------------------------------------------------------------------------------------------
# Scaling over devices (a subprocess per device count)


def scaling_worker(ny: int, nx: int, batch: int, dtype: str, devices: int, warmup: int,
                   repeats: int, steps_per_repeat: int, cpu_malloc: str) -> dict:
    """Runs in a subprocess started with the device count set; prints one JSON line."""
    import jax

    from kmri_jax.train import runtime, sharding

    runtime.configure_cpu_allocator(cpu_malloc)

    if jax.device_count() < devices:
        return {"devices": devices, "error": f"only {jax.device_count()} devices"}
    state, _, fn, mesh = train_setup(ny, nx, batch, dtype, devices=devices)
    state = sharding.replicate(state, mesh)
    dev_batch = sharding.shard_batch(synthetic_host_batch(ny, nx, batch), mesh)
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0).lower(state, dev_batch).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state, dev_batch)
    first_loss = float(m["loss"])
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        for _ in range(steps_per_repeat):
            state, m = compiled(state, dev_batch)
        block(m["loss"])
        if i >= warmup:
            times.append((time.perf_counter() - t) / steps_per_repeat)
    return {"devices": devices, "mesh": int(mesh.size), "compile_s": compile_s,
            "first_loss": first_loss, "step_s": times,
            "samples_per_s": spread([batch / s for s in times]),
            "device_kind": jax.devices()[0].device_kind}


def run_scaling(args: argparse.Namespace, ny: int, nx: int, batch: int, backend_cpu: bool) -> list[dict]:
    rows = []
    for n in args.scaling_devices:
        env = dict(os.environ)
        if backend_cpu:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                f" --xla_force_host_platform_device_count={n}").strip()
            env["JAX_PLATFORMS"] = "cpu"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--scaling-worker",
               json.dumps([ny, nx, batch, args.dtype, n, args.warmup, args.scaling_repeats,
                           args.steps_per_repeat, args.cpu_malloc])]
        print(f"  scaling: {n} device(s) ...", flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            rows.append({"devices": n, "error": proc.stderr[-2000:]})
        else:
            rows.append(json.loads(lines[-1]))
    return rows


# ------------------------------------------------------------------------------------------------
# Orchestration


def run_config(args: argparse.Namespace, ny: int, nx: int, batch: int) -> dict:
    cfg = dict(ny=ny, nx=nx, batch=batch, dtype=args.dtype, warmup=args.warmup,
               steps_per_repeat=args.steps_per_repeat, torch_threads=args.torch_threads,
               store_dir=str(args.store_root / f"store-{ny}x{nx}"), cpu_devices=args.cpu_devices,
               conv=args.conv, cpu_malloc=args.cpu_malloc, torch_malloc=args.torch_malloc)
    ensure_bench_store(Path(cfg["store_dir"]), ny, nx, batch)  # build once, before the workers
    ctx = mp.get_context("spawn")
    targets = [("jax", jax_worker)] + ([] if args.no_torch else [("torch", torch_worker)])
    info: dict[str, Any] = {}
    rounds: dict[str, list[dict]] = {name: [] for name, _ in targets}

    def start(name: str, target: Callable, **extra: Any) -> tuple | None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(child, {**cfg, **extra}))
        proc.start()
        reply = parent.recv()
        if "error" in reply:
            print(f"  skipping {name}: {reply['error']}", file=sys.stderr)
            proc.join()
            return None
        if name == "jax1":
            info["single_device"] = reply
        else:
            info.update(reply)
        return name, proc, parent

    def single_device_worker() -> list[tuple]:
        """The same step on one XLA device, when the CPU was split into several."""
        if info.get("backend") != "cpu" or info.get("step_devices", 1) == 1:
            return []
        rounds["jax1"] = []
        w = start("jax1", jax_worker, cpu_devices=1, step_only=True)
        return [w] if w else []

    def run_rounds(workers: list[tuple]) -> None:
        for r in range(args.repeats):
            for name, _, conn in workers:
                conn.send("round")
                rounds[name].append(conn.recv())
            print(f"  round {r + 1}/{args.repeats} done", flush=True)

    def stop(workers: list[tuple]) -> None:
        for _, proc, conn in workers:
            conn.send("stop")
            proc.join()

    print(f"== {ny}x{nx}, batch {batch}, {args.dtype}", flush=True)
    if args.sequential:
        for name, target in targets:
            w = start(name, target)
            if w:
                ws = [w] + (single_device_worker() if name == "jax" else [])
                for one in ws:
                    run_rounds([one])
                    stop([one])
    else:
        workers = [w for w in (start(n, t) for n, t in targets) if w]
        workers += single_device_worker()
        run_rounds(workers)
        stop(workers)

    res: dict[str, Any] = {"ny": ny, "nx": nx, "batch": batch, "dtype": args.dtype, "info": info,
                           "rounds": rounds}
    res["derived"] = derive(args, res)
    return res


def derive(args: argparse.Namespace, res: dict, meta: dict | None = None) -> dict:
    """Samples/s spreads (stored in ``res``) and the derived ratios from the timed rounds."""
    rounds, batch, info = res["rounds"], res["batch"], res["info"]
    dtype = res.get("dtype") or (meta or {}).get("dtype", args.dtype)

    def rate(name: str, key: str) -> dict | None:
        vals = [batch / r[key] for r in rounds.get(name, []) if key in r]
        return spread(vals) if vals else None

    def med(name: str, key: str) -> float | None:
        vals = [r[key] for r in rounds.get(name, []) if key in r]
        return statistics.median(vals) if vals else None

    res["samples_per_s"] = {
        "simulator": rate("jax", "sim_s"), "jax_step": rate("jax", "step_s"),
        "jax_step_1dev": rate("jax1", "step_s"),
        "jax_end_to_end": rate("jax", "e2e_s"), "torch_step": rate("torch", "torch_step_s"),
        "torch_numpy_step": rate("torch", "torch_numpy_s"),
    }
    step_s, sim_s = med("jax", "step_s"), med("jax", "sim_s")
    derived: dict[str, Any] = {}
    if step_s:
        derived["sim_share_of_step"] = sim_s / step_s
        # Paired per round (same process, adjacent in time): robust to a drifting machine load.
        derived["pipeline_overhead"] = statistics.median(
            r["e2e_s"] / r["step_s"] - 1 for r in rounds["jax"])
        derived["data_wait_share"] = med("jax", "e2e_data_s") / step_s
        if med("torch", "torch_step_s"):
            derived["jax_over_torch"] = med("torch", "torch_step_s") / step_s
            derived["jax_over_torch_numpy"] = med("torch", "torch_numpy_s") / step_s
            # Fastest repeat of each: on a shared CPU, the least disturbed one.
            derived["jax_over_torch_best"] = (min(r["torch_step_s"] for r in rounds["torch"])
                                              / min(r["step_s"] for r in rounds["jax"]))
            if med("jax1", "step_s"):
                derived["jax_1dev_over_torch"] = med("torch", "torch_step_s") / med("jax1", "step_s")
        flops = info.get("step_flops")
        if flops:
            derived["step_gflop"] = flops / 1e9
            derived["achieved_gflops"] = flops / step_s / 1e9
            peak = args.peak_tflops or next(
                (v[dtype] for kind, v in PEAK_TFLOPS.items()
                 if kind in str(info.get("device_kind", ""))), None)
            if peak:
                derived["peak_tflops"] = peak
                derived["mfu"] = flops / step_s / (peak * 1e12)
        if info.get("sim_flops"):
            derived["sim_gflop"] = info["sim_flops"] / 1e9
    return derived


def fmt_rate(s: dict | None) -> tuple[str, str]:
    if not s:
        return "-", "-"

    def f(v: float) -> str:
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"

    return f(s["median"]), f"{f(s['min'])}-{f(s['max'])}"


DOC_SECTION = "## Training throughput"


def add_to_doc(path: Path, text: str, section: str = DOC_SECTION) -> None:
    """Put a run's tables into ``path`` as the newest entry of ``section``: before the section's
    first ``### `` entry (or at the section's end when it has none); at the end of the file if
    the section is missing."""
    doc = path.read_text() if path.exists() else ""
    block = text.strip("\n") + "\n\n"
    heading = re.search(rf"^{re.escape(section)}\b.*$", doc, flags=re.MULTILINE)
    if heading is None:
        doc = doc.rstrip("\n") + "\n\n" + block
    else:
        start = heading.start()
        end = doc.find("\n## ", start + 1)
        end = len(doc) if end < 0 else end + 1
        entry = doc.find("\n### ", start, end)
        at = end if entry < 0 else entry + 1
        doc = doc[:at] + block + doc[at:]
    path.write_text(doc)
    print(f"added to {path} ({section!r})")


def _kept(flag: bool | None) -> str:
    return {True: "kept", False: "the C library's default"}.get(flag, "not recorded")


def markdown(results: list[dict], scaling: dict | None, meta: dict) -> str:
    m, v = meta["machine"], meta["machine"]["versions"]
    kinds = sorted({r["info"].get("device_kind", "?") for r in results})
    torch_dev = sorted({r["info"].get("torch_device_name", "-") for r in results})
    lines = [
        f"### {meta['date']} — {', '.join(kinds)}, {meta['dtype']}",
        "",
        f"- Machine: {m['cpu']} ({' '.join(m.get('cpu_vector_flags') or ['no flags read'])}), "
        f"{m['cores']} cores; JAX device: {', '.join(kinds)} "
        f"(backend {results[0]['info'].get('backend', '?')}); PyTorch device: {', '.join(torch_dev)}"
        f" ({results[0]['info'].get('torch_threads', '-')} threads).",
        f"- CPU allocator (glibc malloc keeping freed memory, `runtime.cpu_malloc`): kmri_jax "
        f"{_kept(results[0]['info'].get('malloc_kept'))}, PyTorch "
        f"{_kept(results[0]['info'].get('torch_malloc_kept'))}.",
        f"- Versions: jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, optax {v['optax']}, "
        f"grain {v['grain']}, torch {v['torch']}, numpy {v['numpy']}, Python {m['python']}.",
        f"- Load average (1 min) at start / end: {meta['load_start']:.1f} / {meta['load_end']:.1f}.",
        f"- Command: `{meta['command']}`",
        f"- Median of {meta['repeats']} timed repeats ({meta['steps_per_repeat']} step(s) each) "
        f"after {meta['warmup']} warm-up repeat(s); min-max across repeats.",
        "",
        "| size, batch | measurement | samples/s (median) | min-max | ms/step (median) |",
        "|---|---|---|---|---|",
    ]
    names = [("simulator", "simulator: jit(vmap(Corruption.corrupt_batch)) + network input"),
             ("jax_step", "kmri_jax train step (fresh corruption, masked L1, Adam)"),
             ("jax_step_1dev", "kmri_jax train step on 1 XLA CPU device"),
             ("torch_step", "PyTorch seed step, inputs corrupted beforehand"),
             ("torch_numpy_step", "PyTorch seed step + per-sample NumPy corruption"),
             ("jax_end_to_end", "kmri_jax end to end: store -> Grain -> shard_batch -> step")]
    for r in results:
        tag = f"{r['ny']}x{r['nx']}, {r['batch']}"
        for key, label in names:
            s = r["samples_per_s"].get(key)
            if not s:
                continue
            n_dev = r["info"].get("step_devices", 1)
            if key == "jax_step" and r["info"].get("backend") == "cpu" and n_dev > 1:
                label += f" on {n_dev} XLA CPU devices (kmri-train's default here)"
            med_, mm = fmt_rate(s)
            lines.append(f"| {tag} | {label} | {med_} | {mm} | {1e3 * r['batch'] / s['median']:.0f} |")
    lines += ["", "| size, batch | kmri_jax / PyTorch step (medians) | (fastest repeats) | "
              "1 CPU device / PyTorch | / PyTorch+NumPy | simulator share of step | "
              "input-pipeline overhead | data wait / step | GFLOP/step (XLA) | achieved GFLOP/s "
              "| MFU |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d = r["derived"]

        def pct(key: str) -> str:
            return f"{100 * d[key]:.1f}%" if key in d else "-"

        def x(key: str) -> str:
            return f"{d[key]:.2f}x" if key in d else "-"

        mfu = f"{100 * d['mfu']:.1f}% of {d['peak_tflops']:.0f} TFLOP/s" if "mfu" in d else "- (CPU)"
        lines.append(
            f"| {r['ny']}x{r['nx']}, {r['batch']} | {x('jax_over_torch')} | {x('jax_over_torch_best')} "
            f"| {x('jax_1dev_over_torch')} | {x('jax_over_torch_numpy')} "
            f"| {pct('sim_share_of_step')} | {pct('pipeline_overhead')} | {pct('data_wait_share')} "
            f"| {d.get('step_gflop', float('nan')):.1f} | {d.get('achieved_gflops', float('nan')):.1f} "
            f"| {mfu} |")
    if scaling:
        cpu = scaling["fake_cpu_devices"]
        lines += ["", f"Scaling of the train step, {scaling['ny']}x{scaling['nx']}, global batch "
                  f"{scaling['batch']}" + (" (fake CPU devices sharing the same cores: this shows "
                                           "the cost of partitioning, not a speed-up)" if cpu else ""),
                  "", "| devices | samples/s (median) | min-max | relative to 1 | first loss |",
                  "|---|---|---|---|---|"]
        base = next((r["samples_per_s"]["median"] for r in scaling["rows"]
                     if r.get("devices") == 1 and "samples_per_s" in r), None)
        for r in scaling["rows"]:
            if "samples_per_s" not in r:
                why = r.get("error", "")
                why = why if why.startswith("only") else "failed (see the JSON)"
                lines.append(f"| {r['devices']} | {why} | | | |")
                continue
            med_, mm = fmt_rate(r["samples_per_s"])
            rel = f"{r['samples_per_s']['median'] / base:.2f}" if base else "-"
            lines.append(f"| {r['devices']} | {med_} | {mm} | {rel} | {r['first_loss']:.6f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------


def main() -> None:
    from kmri_jax.train.runtime import CPU_MALLOC  # imports JAX without starting it

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--configs", type=parse_config, nargs="+",
                    default=[(256, 256, 8), (424, 736, 32), (128, 128, 8)],
                    help="HxW:B image size and global batch (default: 256x256:8 424x736:32 128x128:8)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="U-Net compute dtype (parameters, optimizer and simulator stay float32)")
    ap.add_argument("--conv", choices=("lax", "im2col"), default="lax",
                    help="model.conv of the kmri_jax U-Net (its 3x3 convolutions)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="warm-up repeats (the first compiles)")
    ap.add_argument("--steps-per-repeat", type=int, default=2,
                    help="train steps per timed repeat, dispatched back to back as the loop does")
    ap.add_argument("--torch-threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--cpu-devices", type=int, default=0,
                    help="CPU backend: XLA devices for the kmri_jax step (0: kmri-train's default, "
                         "one per core dividing the batch; the 1-device step is then timed too)")
    ap.add_argument("--cpu-malloc", choices=CPU_MALLOC, default="auto",
                    help="config.runtime.cpu_malloc of the kmri_jax workers (auto: kmri-train's "
                         "default, glibc keeps freed memory on the CPU backend)")
    ap.add_argument("--torch-malloc", choices=("system", "keep"), default="system",
                    help="the PyTorch worker's allocator: system (as the seed runs) or keep "
                         "(kmri-train's glibc settings, for a like-for-like comparison)")
    ap.add_argument("--sequential", action="store_true",
                    help="run JAX and PyTorch one after the other (less memory) instead of round-robin")
    ap.add_argument("--scaling-devices", type=int, nargs="*", default=[1, 2, 4, 8],
                    help="device counts for the scaling table (none: skip)")
    ap.add_argument("--scaling-config", type=parse_config, default=None,
                    help="HxW:B for the scaling table (default: the first --configs entry)")
    ap.add_argument("--scaling-repeats", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak FLOP/s of the device for MFU (default: known GPUs by --dtype)")
    ap.add_argument("--store-root", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--json", type=Path, default=None, help="write all results to this JSON file")
    ap.add_argument("--append-doc", nargs="?", const=ROOT / "docs" / "benchmarks.md", type=Path,
                    default=None, help="append the markdown tables to this file "
                    "(default docs/benchmarks.md)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="print (and with --append-doc append) the tables of an earlier --json run")
    ap.add_argument("--scaling-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.scaling_worker:
        print(json.dumps(scaling_worker(*json.loads(args.scaling_worker))))
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for r in saved["results"]:  # recompute derived figures with this version's formulas
            r["derived"] = derive(args, r, saved["meta"])
        text = markdown(saved["results"], saved["scaling"], saved["meta"])
        print(text)
        if args.append_doc:
            add_to_doc(args.append_doc, text)
        return

    # On a GPU, let the JAX and torch workers share the card (no 75% preallocation by JAX).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join(shlex.quote(a) for a in
                                        [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "machine": machine_info(), "dtype": args.dtype, "repeats": args.repeats,
        "warmup": args.warmup, "steps_per_repeat": args.steps_per_repeat,
        "load_start": os.getloadavg()[0],
    }
    results = [run_config(args, *c) for c in args.configs]
    scaling = None
    if args.scaling_devices:
        ny, nx, b = args.scaling_config or args.configs[0]
        cpu = results[0]["info"].get("backend") == "cpu"
        print(f"== scaling {ny}x{nx}, global batch {b}", flush=True)
        scaling = {"ny": ny, "nx": nx, "batch": b, "fake_cpu_devices": cpu,
                   "rows": run_scaling(args, ny, nx, b, cpu)}
    meta["load_end"] = os.getloadavg()[0]
    text = markdown(results, scaling, meta)
    print()
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results, "scaling": scaling},
                                        indent=2))
        print(f"wrote {args.json}")
    if args.append_doc:
        add_to_doc(args.append_doc, text)


if __name__ == "__main__":
    main()
