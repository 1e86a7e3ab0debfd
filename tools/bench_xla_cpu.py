"""Benchmark: how the installed XLA:CPU runs the U-Net's kind of work, variant by variant.

Two questions the CPU step's profile left open (issue 14, docs/profile.md):

- **bfloat16**: does XLA:CPU multiply and convolve in bfloat16? Matrix products and a 3x3
  convolution, each as float32, as bfloat16 -> bfloat16, and as bfloat16 -> float32
  (``preferred_element_type=float32``), on one core; plus the element type of the convolution
  XLA compiles for bfloat16 operands.
- **which library convolves**: YNNPACK's fusions (XLA's default) against Eigen's convolutions
  (:data:`LIBRARIES`: ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=...``), forward,
  input gradient and weight gradient of 3x3 convolutions at batch 8, on one core and on one
  device with every core; with ``--step``, kmri-train's train step (128 x 128 batch 8, or the
  given configurations) on one device and on kmri-train's CPU device count (one per core, as
  many as divide the batch), for each library.

Each variant runs in its own worker process, since XLA reads its flags once, when its backend
starts; one-core workers pin themselves (``sched_setaffinity``) before JAX starts; every
worker sets glibc's allocator as kmri-train does (``runtime.configure_cpu_allocator``), so no
figure pays for faulting in fresh buffers. Figures are medians of ``--repeats`` calls after one
warm-up call, in ms.

    python tools/bench_xla_cpu.py            # products and convolutions
    python tools/bench_xla_cpu.py --step     # and the train step
    python tools/bench_xla_cpu.py --step 256x256:8 424x736:1 --no-kernels   # the step alone
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
# No heavy imports here: one-core workers pin themselves before JAX starts.
from bench_common import machine_info, parse_config, timed  # noqa: E402

# XLA_FLAGS per variant. The YNN fusion list names the ops YNNPACK takes; left unset it holds
# convolutions, dots and reductions; "dot,reduce" leaves the convolutions to Eigen, "" gives
# YNNPACK nothing (the large reductions then become XLA's own tree of reduce-windows).
LIBRARIES = {
    "YNNPACK (default)": "",
    "Eigen convolutions, YNNPACK dots and reductions":
        "--xla_cpu_experimental_ynn_fusion_type=dot,reduce",
    "Eigen, no YNNPACK": "--xla_cpu_experimental_ynn_fusion_type=",
}
PRODUCTS = [(4096, 1024, 1024), (65536, 288, 32), (4096, 1152, 128)]  # M, K, N
CONVS = [(8, 128, 32, 32), (8, 64, 64, 64), (8, 16, 256, 256)]  # batch, size, in, out
DEFAULT_STEP = "128x128:8"


def _median_ms(fn, repeats: int) -> float:
    return 1e3 * statistics.median(timed(fn, repeats, warmup=1))


def _products(repeats: int, config: str) -> dict[str, Any]:
    """One core: products and a convolution in float32, bf16 -> bf16 and bf16 -> f32."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    forms = {"float32": (jnp.float32, None), "bfloat16 -> bfloat16": (jnp.bfloat16, None),
             "bfloat16 -> float32": (jnp.bfloat16, jnp.float32)}  # operands -> result
    key = jax.random.key(0)
    rows = []
    for m, k, n in PRODUCTS:
        a, b = jax.random.normal(key, (m, k)), jax.random.normal(key, (k, n))
        row = {"op": f"product {m}x{k} by {k}x{n}"}
        for form, (dtype, out) in forms.items():
            f = jax.jit(lambda a, b, out=out: lax.dot_general(
                a, b, (((1,), (0,)), ((), ())), preferred_element_type=out))
            x, y = a.astype(dtype), b.astype(dtype)
            row[form] = _median_ms(lambda: jax.block_until_ready(f(x, y)), repeats)
        rows.append(row)
    x, w = jax.random.normal(key, (4, 128, 128, 64)), jax.random.normal(key, (3, 3, 64, 64))
    row, compiled_types = {"op": "3x3 convolution 4x128x128 64->64"}, {}
    for form, (dtype, out) in forms.items():
        f = jax.jit(lambda x, w, out=out: lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=out))
        xs, ws = x.astype(dtype), w.astype(dtype)
        row[form] = _median_ms(lambda: jax.block_until_ready(f(xs, ws)), repeats)
        hlo = f.lower(xs, ws).compile().as_text()
        compiled_types[form] = sorted({line.split("=")[1].split("[")[0].strip()
                                       for line in hlo.splitlines() if " convolution(" in line})
    rows.append(row)
    return {"rows": rows, "compiled_convolution_types": compiled_types}


def _convs(repeats: int, config: str) -> dict[str, Any]:
    """3x3 convolutions at batch 8: forward, input gradient, weight gradient."""
    import jax
    from jax import lax

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    key, rows = jax.random.key(0), []
    for b, s, ci, co in CONVS:
        x, w = jax.random.normal(key, (b, s, s, ci)), jax.random.normal(key, (3, 3, ci, co))
        g = jax.random.normal(key, (b, s, s, co))
        fwd = jax.jit(conv)
        dx = jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[0])
        dw = jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[1])
        def ms(fn, *a):
            return _median_ms(lambda: jax.block_until_ready(fn(*a)), repeats)

        rows.append({"op": f"{b}x{s}x{s} {ci}->{co}", "forward": ms(fwd, x, w),
                     "input gradient": ms(dx, x, w, g), "weight gradient": ms(dw, x, w, g)})
    return {"rows": rows}


def _step(repeats: int, config: str) -> dict[str, Any]:
    """kmri-train's train step at ``config`` (``HxW:B``) on this process's devices."""
    import jax

    from bench_common import synthetic_host_batch, train_setup
    from kmri_jax.train import sharding

    ny, nx, b = parse_config(config)
    state, _, fn, mesh = train_setup(ny, nx, b, "float32", devices=jax.device_count())
    state = sharding.replicate(state, mesh)
    batch = sharding.shard_batch(synthetic_host_batch(ny, nx, b), mesh)
    step = jax.jit(fn, donate_argnums=0).lower(state, batch).compile()
    box = {"state": state}

    def once():
        out = step(box["state"], batch)
        box["state"] = out[0]
        jax.block_until_ready(out)

    return {"devices": jax.device_count(), "ms": _median_ms(once, repeats)}


WORKERS = {"products": _products, "convs": _convs, "step": _step}


def _run_worker(kind: str, *, flags: str, one_core: bool, devices: int, repeats: int,
                config: str = DEFAULT_STEP) -> dict:
    """``kind`` in a fresh process with ``XLA_FLAGS=flags`` and ``devices`` CPU devices."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    if flags:
        env["XLA_FLAGS"] = flags
    cmd = [sys.executable, __file__, "--worker", kind, "--repeats", str(repeats),
           "--worker-config", config]
    if one_core:
        cmd.append("--one-core")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"worker {kind} ({flags or 'default flags'}) failed:\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _kernel_tables(repeats: int, cores: int) -> dict[str, Any]:
    """Prints the bfloat16 and the convolution tables; returns their figures."""
    products = _run_worker("products", flags="", one_core=True, devices=1, repeats=repeats)
    kept = "yes" if products["malloc_kept"] else "no"
    print(f"glibc malloc kept as kmri-train keeps it: {kept}")
    forms = ["float32", "bfloat16 -> bfloat16", "bfloat16 -> float32"]
    print("\nbfloat16, one core (ms; the last column: float32 / bfloat16 -> float32)\n")
    print(_table(["op", *forms, "speed-up"],
                 [[r["op"], *(f"{r[f]:.1f}" for f in forms), f"{r[forms[0]] / r[forms[2]]:.2f}x"]
                  for r in products["rows"]]))
    types = products["compiled_convolution_types"]
    print("\nElement type of the compiled convolution, by operand form: "
          + "; ".join(f"{form}: {', '.join(t)}" for form, t in types.items()))

    parts = ["forward", "input gradient", "weight gradient"]
    convs, rows = [], []
    for library, flags in LIBRARIES.items():
        for one_core in (True, False):
            where = "one core" if one_core else f"one device, {cores} cores"
            r = _run_worker("convs", flags=flags, one_core=one_core, devices=1, repeats=repeats)
            convs.append({"library": library, "where": where, **r})
            rows += [[library, where, row["op"], *(f"{row[p]:.1f}" for p in parts)]
                     for row in r["rows"]]
    print("\n3x3 convolutions by library (ms)\n")
    print(_table(["library", "cores", "convolution", *parts], rows))
    return {"products": products, "convs": convs}


def _step_table(config: str, repeats: int, cores: int) -> list[dict[str, Any]]:
    """Prints the train step's table at ``config`` for each library; returns its figures."""
    from kmri_jax.train import runtime

    batch = parse_config(config)[2]
    # One device, and kmri-train's count: one per core, as many as divide the batch.
    per_core = runtime.cpu_device_count(batch_sizes=(batch,), cpus=cores)
    figures, rows = [], []
    for library, flags in LIBRARIES.items():
        for devices in sorted({1, per_core}):
            r = _run_worker("step", flags=flags, one_core=False, devices=devices,
                            repeats=repeats, config=config)
            figures.append({"library": library, "config": config, **r})
            rows.append([library, str(devices), f"{r['ms']:.0f}", f"{batch * 1e3 / r['ms']:.2f}"])
    print(f"\nkmri-train's step, {config} (HxW:batch), {cores} cores\n")
    print(_table(["library", "devices", "ms per step", "samples/s"], rows))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--step", nargs="*", metavar="HxW:B",
                    help=f"also time kmri-train's step (alone: {DEFAULT_STEP})")
    ap.add_argument("--no-kernels", action="store_true",
                    help="skip the products and convolutions")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--one-core", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-config", default=DEFAULT_STEP, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.one_core:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from kmri_jax.train import runtime

        kept = runtime.configure_cpu_allocator("auto")  # as kmri-train: reused buffers
        out = WORKERS[args.worker](args.repeats, args.worker_config)
        print(json.dumps({**out, "malloc_kept": kept}))
        return

    from kmri_jax.train import runtime

    cores = runtime.usable_cpus()  # the count kmri-train splits the CPU by
    m = machine_info()
    print(f"Machine: {m['cpu']} ({' '.join(m['cpu_vector_flags'])}), {cores} cores; "
          f"jax {m['versions']['jax']}, jaxlib {m['versions']['jaxlib']}")
    results: dict[str, Any] = {"machine": m, "cores": cores}

    if not args.no_kernels:
        results.update(_kernel_tables(args.repeats, cores))
    for config in args.step or ([DEFAULT_STEP] if args.step is not None else []):
        results.setdefault("step", []).extend(_step_table(config, args.repeats, cores))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
