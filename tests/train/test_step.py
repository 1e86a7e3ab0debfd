"""The compiled train step: traced once for any parameter values, and it learns."""

from __future__ import annotations

import jax
import numpy as np
import optax

from kmri_jax.train import losses
from kmri_jax.train.state import create_state
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.step import make_train_step


def _batch(rng, b=4, ny=32, nx=48):
    yy, xx = np.mgrid[:ny, :nx]
    images = np.stack([
        ((yy - ny / 2 - rng.integers(-4, 5)) ** 2 / 90 + (xx - nx / 2) ** 2 / 200 < 1).astype(np.float32)
        * rng.uniform(0.5, 1.0) for _ in range(b)
    ])
    return dict(image=images, valid_shape=np.tile([ny, nx], (b, 1)).astype(np.int32),
                tr=rng.uniform(2.0, 3.0, b).astype(np.float32), te=np.full(b, 0.03, np.float32),
                volume=np.arange(b, dtype=np.int32), slice=np.arange(b, dtype=np.int32),
                combination=rng.integers(0, 81, b).astype(np.int32), weight=np.ones(b, np.float32))


def test_step_compiles_once_and_loss_falls(config):
    config.model.residual = False  # the seed's plain U-Net: a random start with a large loss
    tx = optax.adam(1e-3)
    state, defs = create_state(0, model_config=config.model, tx=tx)
    traces = []
    step_fn = make_train_step(defs, tx, loss_fn=losses.get_loss("kspace_l1"),
                              corruption=Corruption(mode="fresh"), fixed_root=jax.random.key(1))

    def counted(state, batch):
        traces.append(1)  # runs only while tracing
        return step_fn(state, batch)

    step = jax.jit(counted, donate_argnums=0)
    rng = np.random.default_rng(0)
    seen = []
    for i in range(40):
        state, metrics = step(state, _batch(rng))  # new images, TR and corruption every step
        seen.append(float(metrics["loss"]))
    assert len(traces) == 1
    assert int(state.step) == 40
    assert np.all(np.isfinite(seen))
    assert np.mean(seen[-5:]) < 0.5 * np.mean(seen[:3])


def test_fixed_mode_is_the_same_corruption_every_time(config):
    """The seed replica's fixed corruption: the same batch gives the same loss gradient input."""
    corrupt_batch = Corruption().corrupt_batch

    batch = _batch(np.random.default_rng(1))
    root = jax.random.key(3)
    a, pa = corrupt_batch(root, batch, mode="fixed")
    b, pb = corrupt_batch(root, batch, mode="fixed")
    np.testing.assert_array_equal(np.asarray(a.kspace), np.asarray(b.kspace))
    # A sample's corruption depends on its own identity only, not on its batch neighbours.
    single = {k: v[1:2] for k, v in batch.items()}
    c, _ = corrupt_batch(root, single, mode="fixed")
    np.testing.assert_allclose(np.asarray(c.kspace[0]), np.asarray(a.kspace[1]), rtol=1e-5, atol=1e-4)
    from kmri_jax.sim import SEED_GRID
    combo = int(batch["combination"][1])
    assert float(pa.amplitude_px[1]) == SEED_GRID.amplitude_px[combo // 27]
    assert float(pa.snr_db[1]) == SEED_GRID.snr_db[combo % 3]
