"""Benchmark: each op of the seed U-Net's train step, XLA:CPU against PyTorch (oneDNN), per core.

Where the U-Net step loses to PyTorch on a CPU, op by op (issue 14). Every op the seed's U-Net
runs (base 32) at one size and batch, forward and backward separately:

- each 3x3 convolution: forward (``fwd``), input gradient (``dgrad``), weight gradient
  (``wgrad``); XLA's ``lax.conv_general_dilated`` in the model's NHWC/HWIO layout against
  ``torch.ops.aten.convolution`` / ``convolution_backward`` (what autograd calls; NCHW, oneDNN
  on x86) with the same output mask;
- each BatchNorm (training mode) + ReLU, forward + backward together;
- the 2x2 max pools (the model's reshape-max) and the 2x2 stride-2 up-sampling (the model's
  einsum against ``ConvTranspose2d``), forward + backward;
- the 1x1 output convolution, forward + backward;
- the whole train step (forward, L1, backward, Adam; ``tools/bench_unet.py``'s).

Both sides run on **one core, one thread** (each worker process pinned with
``sched_setaffinity`` before its library starts, ``torch.set_num_threads(1)``), with the same
C allocator settings (``--malloc``: ``keep``, kmri-train's glibc settings, by default, so
neither side's ops pay for faulting in fresh buffers; ``system``: glibc's defaults), at the batch
one CPU device gets in ``kmri-train`` (``--batch``, default 4 = batch 8 over 2 devices): the
kernels are compared without threading. The two workers take turns, op by op (round-robin),
so the load of a shared machine hits both alike. Per op: the median over rounds of the best of
``--inner`` calls.

    python tools/bench_ops.py                          # 128x128, batch 4 per core
    python tools/bench_ops.py --size 256 --out runs/bench/ops_256.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from bench_common import machine_info  # noqa: E402  (no heavy imports: workers pin first)


def unet_ops(size: int, base: int = 32) -> list[dict[str, Any]]:
    """The seed U-Net's ops at ``size x size``: name, kind, channels, spatial size, GFLOP/sample
    (multiply-adds x 2; a conv's dgrad and wgrad cost what its forward does)."""
    c = base
    blocks = [("enc1", 2, c, size), ("enc2", c, 2 * c, size // 2), ("enc3", 2 * c, 4 * c, size // 4),
              ("bottleneck", 4 * c, 8 * c, size // 8), ("dec3", 8 * c, 4 * c, size // 4),
              ("dec2", 4 * c, 2 * c, size // 2), ("dec1", 2 * c, c, size)]
    ops = []
    for name, cin, cout, s in blocks:
        for i, ci in ((1, cin), (2, cout)):
            gflop = 2 * 9 * ci * cout * s * s / 1e9
            for part in ("fwd", "dgrad", "wgrad"):
                if part == "dgrad" and name == "enc1" and i == 1:
                    continue  # the network's input needs no gradient
                ops.append(dict(name=f"{name}.conv{i} {part}", kind=f"conv_{part}", cin=ci,
                                cout=cout, s=s, gflop=gflop))
            ops.append(dict(name=f"{name}.bn{i}+relu fwd+bwd", kind="bn_relu", cin=cout,
                            cout=cout, s=s, gflop=0.0))
    for name, ch, s in (("pool1", c, size), ("pool2", 2 * c, size // 2), ("pool3", 4 * c, size // 4)):
        ops.append(dict(name=f"{name} fwd+bwd", kind="pool", cin=ch, cout=ch, s=s, gflop=0.0))
    for name, cin, s in (("up3", 8 * c, size // 8), ("up2", 4 * c, size // 4), ("up1", 2 * c, size // 2)):
        ops.append(dict(name=f"{name} fwd+bwd", kind="up", cin=cin, cout=cin // 2, s=s,
                        gflop=3 * 2 * cin * (cin // 2) * 4 * s * s / 1e9))
    ops.append(dict(name="out_conv 1x1 fwd+bwd", kind="out", cin=c, cout=2, s=size,
                    gflop=3 * 2 * c * 2 * size * size / 1e9))
    return ops


def _jax_op(op: dict[str, Any], batch: int) -> Callable[[], None]:
    """A jitted closure running ``op`` once on device-resident random data (blocks)."""
    import jax
    import jax.numpy as jnp

    key = iter(jax.random.split(jax.random.key(0), 8))
    b, s, cin, cout = batch, op["s"], op["cin"], op["cout"]

    def rand(*shape):
        return jax.random.normal(next(key), shape, jnp.float32)

    dn = ("NHWC", "HWIO", "NHWC")
    kind = op["kind"]
    if kind.startswith("conv_"):
        x, w, g = rand(b, s, s, cin), rand(3, 3, cin, cout), rand(b, s, s, cout)

        def conv(x_, w_):
            return jax.lax.conv_general_dilated(x_, w_, (1, 1), "SAME", dimension_numbers=dn)

        # Every array is an argument: a captured one would be a constant, and XLA would fold
        # its layout transposes (e.g. of x for the weight gradient) into the compiled program.
        if kind == "conv_fwd":
            f = jax.jit(conv)
            args = (x, w)
        elif kind == "conv_dgrad":
            f = jax.jit(lambda x_, w_, g_: jax.vjp(lambda xx: conv(xx, w_), x_)[1](g_)[0])
            args = (x, w, g)
        else:
            f = jax.jit(lambda x_, w_, g_: jax.vjp(lambda ww: conv(x_, ww), w_)[1](g_)[0])
            args = (x, w, g)
    elif kind == "bn_relu":
        x, g = rand(b, s, s, cin), rand(b, s, s, cin)
        scale, bias = jnp.ones(cin), jnp.zeros(cin)

        def bn_relu(x_, sc, bi):
            mean = jnp.mean(x_, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(x_ - mean), axis=(0, 1, 2))
            return jax.nn.relu((x_ - mean) * jax.lax.rsqrt(var + 1e-5) * sc + bi)

        f = jax.jit(lambda x_, sc, bi, g_: jax.vjp(bn_relu, x_, sc, bi)[1](g_))
        args = (x, scale, bias, g)
    elif kind == "pool":
        x, g = rand(b, s, s, cin), rand(b, s // 2, s // 2, cin)

        def pool(x_):
            return x_.reshape(b, s // 2, 2, s // 2, 2, cin).max(axis=(2, 4))

        f, args = jax.jit(lambda x_, g_: jax.vjp(pool, x_)[1](g_)), (x, g)
    elif kind == "up":
        x, w, g = rand(b, s, s, cin), rand(cin, 2, 2, cout), rand(b, 2 * s, 2 * s, cout)

        def up(x_, w_):
            y = jnp.einsum("bhwc,cijo->bhiwjo", x_, w_)
            return y.reshape(b, 2 * s, 2 * s, cout)

        f, args = jax.jit(lambda x_, w_, g_: jax.vjp(up, x_, w_)[1](g_)), (x, w, g)
    elif kind == "out":
        x, w, g = rand(b, s, s, cin), rand(1, 1, cin, cout), rand(b, s, s, cout)

        def out(x_, w_):
            return jax.lax.conv_general_dilated(x_, w_, (1, 1), "SAME", dimension_numbers=dn)

        f, args = jax.jit(lambda x_, w_, g_: jax.vjp(out, x_, w_)[1](g_)), (x, w, g)
    else:
        raise ValueError(kind)

    def run() -> None:
        jax.block_until_ready(f(*args))

    return run


def _torch_op(op: dict[str, Any], batch: int) -> Callable[[], None]:
    """The same op in PyTorch (NCHW, as the seed's model), what autograd would call."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    b, s, cin, cout = batch, op["s"], op["cin"], op["cout"]
    kind = op["kind"]
    aten = torch.ops.aten
    if kind.startswith("conv_"):
        x, w, g = torch.randn(b, cin, s, s), torch.randn(cout, cin, 3, 3), torch.randn(b, cout, s, s)
        mask = {"conv_dgrad": [True, False, False], "conv_wgrad": [False, True, False]}.get(kind)
        if mask is None:
            def run() -> None:
                aten.convolution(x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        else:
            def run() -> None:
                aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0],
                                          1, mask)
        return run
    if kind == "bn_relu":
        x = torch.randn(b, cin, s, s, requires_grad=True)
        scale = torch.ones(cin, requires_grad=True)
        bias = torch.zeros(cin, requires_grad=True)
        g = torch.randn(b, cin, s, s)
        rm, rv = torch.zeros(cin), torch.ones(cin)

        def run() -> None:
            y = F.relu(F.batch_norm(x, rm, rv, scale, bias, training=True, momentum=0.1, eps=1e-5))
            torch.autograd.grad(y, (x, scale, bias), g)
        return run
    if kind == "pool":
        x = torch.randn(b, cin, s, s, requires_grad=True)
        g = torch.randn(b, cin, s // 2, s // 2)

        def run() -> None:
            torch.autograd.grad(F.max_pool2d(x, 2), (x,), g)
        return run
    if kind in ("up", "out"):
        x = torch.randn(b, cin, s, s, requires_grad=True)
        if kind == "up":
            layer = torch.nn.ConvTranspose2d(cin, cout, 2, 2)
            g = torch.randn(b, cout, 2 * s, 2 * s)
        else:
            layer = torch.nn.Conv2d(cin, cout, 1)
            g = torch.randn(b, cout, s, s)
        params = (x, *layer.parameters())

        def run() -> None:
            torch.autograd.grad(layer(x), params, g)
        return run
    raise ValueError(kind)


def _worker(conn: Any, side: str, cpu: int, ops: list[dict], size: int, batch: int,
            inner: int, malloc: str) -> None:
    """Pinned to ``cpu`` before its library starts; builds and warms every op and the full step,
    then answers ``("op", i)`` / ``("step",)`` with the best of ``inner`` timed calls (s)."""
    os.sched_setaffinity(0, {cpu})
    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, str(ROOT / "tools"))
    sys.path.insert(0, str(ROOT))
    from kmri_jax.train import runtime
    runtime.configure_cpu_allocator(malloc)  # before either library starts its threads
    if side == "jax":
        import jax
        jax.config.update("jax_num_cpu_devices", 1)
        from bench_unet import setup_jax
        runs = [_jax_op(op, batch) for op in ops]
        step, _ = setup_jax("einsum", size=size, batch=batch)
        info = {"jax": jax.__version__}
    else:
        import torch
        torch.set_num_threads(1)
        from bench_unet import setup_torch
        runs = [_torch_op(op, batch) for op in ops]
        step, _ = setup_torch(size=size, batch=batch, threads=1)
        info = {"torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available()}
    for run in [*runs, step, step]:
        run()
    conn.send(info)
    while (msg := conn.recv()) != ("stop",):
        run = step if msg == ("step",) else runs[msg[1]]
        best = float("inf")
        for _ in range(inner):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        conn.send(best)


def cpu_description() -> str:
    """The processor and its vector extensions (``bench_common.machine_info``)."""
    info = machine_info()
    return f"{info['cpu']} ({' '.join(info['cpu_vector_flags'])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="per core (kmri-train: batch / 2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the core both workers run on")
    parser.add_argument("--malloc", choices=("keep", "system"), default="keep",
                        help="both workers' glibc malloc settings (runtime.cpu_malloc)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_ops.json"))
    args = parser.parse_args()

    ops = unet_ops(args.size)
    ctx = mp.get_context("spawn")
    workers = {}
    for side in ("jax", "torch"):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker,
                           args=(child, side, args.cpu, ops, args.size, args.batch, args.inner,
                                 args.malloc))
        proc.start()
        workers[side] = (proc, parent, parent.recv())  # set up one at a time
    times = {side: [[] for _ in range(len(ops) + 1)] for side in workers}
    for _ in range(args.rounds):
        for i in range(len(ops) + 1):
            msg = ("step",) if i == len(ops) else ("op", i)
            for side, (_, conn, _) in workers.items():
                conn.send(msg)
                times[side][i].append(conn.recv())
    for proc, conn, _ in workers.values():
        conn.send(("stop",))
        proc.join()

    med = {side: [statistics.median(t) for t in ts] for side, ts in times.items()}
    rows = [dict(op, jax_ms=1e3 * j, torch_ms=1e3 * t)
            for op, j, t in zip(ops, med["jax"][:-1], med["torch"][:-1])]
    step = {"jax_ms": 1e3 * med["jax"][-1], "torch_ms": 1e3 * med["torch"][-1]}
    total = {s: sum(r[f"{s}_ms"] for r in rows) for s in ("jax", "torch")}

    print(f"{cpu_description()}; {args.size}x{args.size}, batch {args.batch}, one core each, "
          f"malloc {args.malloc}")
    print(f"| op | GFLOP | XLA ms | PyTorch ms | XLA / PyTorch | XLA GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        gf = r["gflop"] * args.batch
        rate = (lambda ms: f"{gf / ms * 1e3:.0f}" if gf else "")
        print(f"| {r['name']} | {gf:.2f} | {r['jax_ms']:.1f} | {r['torch_ms']:.1f} | "
              f"{r['jax_ms'] / r['torch_ms']:.2f} | {rate(r['jax_ms'])} | {rate(r['torch_ms'])} |")
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        acc = by_kind.setdefault(r["kind"], [0.0, 0.0])
        acc[0] += r["jax_ms"]
        acc[1] += r["torch_ms"]
    print()
    print("| kind | XLA ms | PyTorch ms | XLA / PyTorch | XLA - PyTorch ms |")
    print("|---|---|---|---|---|")
    for kind, (j, t) in by_kind.items():
        print(f"| {kind} | {j:.1f} | {t:.1f} | {j / t:.2f} | {j - t:+.1f} |")
    print(f"| **sum of ops** | {total['jax']:.1f} | {total['torch']:.1f} | "
          f"{total['jax'] / total['torch']:.2f} | {total['jax'] - total['torch']:+.1f} |")
    print(f"| **whole train step** | {step['jax_ms']:.1f} | {step['torch_ms']:.1f} | "
          f"{step['jax_ms'] / step['torch_ms']:.2f} | {step['jax_ms'] - step['torch_ms']:+.1f} |")

    meta = {"cpu": cpu_description(), "size": args.size, "batch": args.batch,
            "rounds": args.rounds, "inner": args.inner,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **{k: v for _, _, info in workers.values() for k, v in info.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "ops": rows, "step": step}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
