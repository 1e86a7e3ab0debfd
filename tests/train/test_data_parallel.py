"""Data parallel: the train and eval steps on 4 (fake CPU) devices equal 1 device.

Runs in a subprocess because the device count is fixed when JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np, optax
    from kmri_jax.train import losses, sharding
    from kmri_jax.train.state import create_state
    from kmri_jax.train.corruption import Corruption
    from kmri_jax.train.step import make_eval_step, make_train_step
    sys.path.insert(0, sys.argv[1])
    from tiny_run import tiny_config

    c = tiny_config()
    rng = np.random.default_rng(0)
    B, ny, nx = 8, 32, 48
    def batch(i):
        r = np.random.default_rng(i)
        return dict(image=r.random((B, ny, nx), dtype=np.float32),
                    valid_shape=np.stack([r.integers(20, ny + 1, B), r.integers(30, nx + 1, B)], 1).astype(np.int32),
                    tr=np.full(B, 2.5, np.float32), te=np.full(B, 0.03, np.float32),
                    volume=np.arange(B, dtype=np.int32), slice=np.arange(B, dtype=np.int32) * 3,
                    combination=(np.arange(B, dtype=np.int32) * 10) % 81, weight=np.ones(B, np.float32))
    out = {}
    for n in (1, 4):
        mesh = jax.make_mesh((n,), ("data",), devices=jax.devices()[:n],
                             axis_types=(jax.sharding.AxisType.Auto,))
        tx = optax.adam(1e-3)
        state, defs = create_state(0, model_config=c.model, tx=tx)
        state = sharding.replicate(state, mesh)
        loss = losses.get_loss("seed_masked_l1")
        step = jax.jit(make_train_step(defs, tx, loss_fn=loss, corruption=Corruption(),
                                       fixed_root=jax.random.key(1)), donate_argnums=0)
        evaluate = jax.jit(make_eval_step(defs, loss_fn=loss, corruption=Corruption(),
                                          eval_root=jax.random.key(2)))
        losses_seen = []
        for i in range(3):
            state, m = step(state, sharding.shard_batch(batch(i), mesh))
            losses_seen.append(float(m["loss"]))
        ev = evaluate(state, sharding.shard_batch(batch(99), mesh))
        leaf = np.asarray(jax.tree.leaves(state.params)[0]).ravel()[:16]
        out[n] = dict(losses=losses_seen, ssim=np.asarray(ev["ssim"]).tolist(),
                      param=leaf.tolist(), devices=len(mesh.devices.ravel()))
    print(json.dumps(out))
""")


def test_four_devices_equal_one():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    here = os.path.dirname(os.path.dirname(__file__))  # tests/, where tiny_run.py is
    done = subprocess.run([sys.executable, "-c", _SCRIPT, here], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one, four = out["1"], out["4"]
    assert (one["devices"], four["devices"]) == (1, 4)
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(four["ssim"], one["ssim"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(four["param"], one["param"], rtol=1e-4, atol=1e-6)
