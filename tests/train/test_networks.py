"""The model kinds (train/networks.py): what each network reads and predicts, against numpy
references, and the motion network's step: its displacement lives on the acquired lines, it is
traced once, and its losses fall."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kmri_jax import sim
from kmri_jax.train import losses
from kmri_jax.train.corruption import Corruption
from kmri_jax.train.networks import Network, forward, motion_features
from kmri_jax.train.state import create_state, run_model
from kmri_jax.train.step import make_train_step
from test_step import _batch

CHEAP_ESTIMATE = (("n_inner", 5), ("n_outer", 2))  # the search itself is tested in tests/correct


def _corrupted(batch):
    return Corruption().corrupt_batch(jax.random.key(0), batch, mode="fresh")[0]


def _run(defs, state):
    return lambda fn: run_model(defs, state.params, state.batch_stats, fn, train=False)[0]


def test_untrained_image_network_returns_the_zero_filled_input(config):
    """Residual in the image domain: its k-space is the corrupted k-space (numpy FFTs)."""
    config.model.kind = "image_unet"
    state, defs = create_state(0, model_config=config.model, tx=optax.adam(1e-3))
    c = _corrupted(_batch(np.random.default_rng(0)))
    scale = jnp.max(jnp.abs(c.kspace), axis=(-2, -1)) + 1e-8
    pred, d = forward(_run(defs, state), c.kspace, c.mask, scale, kind="image_unet")
    k = np.asarray(c.kspace)
    z = np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)))
    back = np.fft.fftshift(np.fft.fft2(z), axes=(-2, -1)) / np.asarray(scale)[:, None, None]
    np.testing.assert_allclose(np.asarray(pred[:, 0] + 1j * pred[:, 1]), back, atol=2e-5)
    assert d is None


def test_motion_features_pair_each_line_with_its_mirror():
    """For a real image, conj of the mirror line's hybrid profile is the line's own profile."""
    rng = np.random.default_rng(1)
    image = rng.random((1, 16, 24)).astype(np.float32)
    k = sim.image_to_kspace(jnp.asarray(image))
    f = np.asarray(motion_features(k, jnp.ones((1, 16), bool)))
    rows = slice(1, 16)  # row 0 (ky = -8) has no mirror on the grid
    np.testing.assert_allclose(f[0, 2, rows], f[0, 0, rows], atol=1e-5)
    np.testing.assert_allclose(f[0, 3, rows], f[0, 1, rows], atol=1e-5)
    h = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(np.asarray(k)[0], axes=-1)), axes=-1)
    np.testing.assert_allclose(f[0, 0], h.real / np.abs(h).max(), atol=1e-5)


def test_motion_network_step_is_traced_once_and_learns(config):
    config.model.kind, config.model.motion_channels, config.model.motion_depth = "motion_unet", 4, 2
    tx = optax.adam(3e-3)
    state, defs = create_state(0, model_config=config.model, tx=tx)
    network = Network(kind="motion_unet", displacement_weight=0.1,
                      estimate_options=CHEAP_ESTIMATE)
    traces = []
    step_fn = make_train_step(defs, tx, loss_fn=losses.get_loss("image_l1"),
                              corruption=Corruption(mode="fixed"), network=network,
                              fixed_root=jax.random.key(1))

    def counted(state, batch):
        traces.append(1)
        return step_fn(state, batch)

    step = jax.jit(counted, donate_argnums=0)
    rng = np.random.default_rng(0)
    fixed = _batch(rng)  # one batch with one corruption: the step must fit it
    seen, disp = [], []
    for _ in range(15):
        state, metrics = step(state, fixed)
        seen.append(float(metrics["loss"]))
        disp.append(float(metrics["disp_l1"]))
    assert len(traces) == 1 and np.all(np.isfinite(seen))
    assert np.mean(seen[-3:]) < 0.95 * np.mean(seen[:3])
    assert np.mean(disp[-3:]) < np.mean(disp[:3])  # the motion network learns too

    c = Corruption().corrupt_batch(jax.random.key(1), fixed, mode="fixed")[0]
    scale = jnp.max(jnp.abs(c.kspace), axis=(-2, -1)) + 1e-8
    _, d = forward(_run(defs, state), c.kspace, c.mask, scale, kind="motion_unet",
                   estimate_options=dict(CHEAP_ESTIMATE))
    d, mask = np.asarray(d), np.asarray(c.mask)
    assert d.shape == mask.shape and np.all(d[~mask] == 0)  # the mask's support
    for row, m in zip(d, mask):  # the package's constant: the 10/90% quantiles' mid-point at 0
        assert abs(np.quantile(row[m], 0.1) + np.quantile(row[m], 0.9)) < 2e-4
    assert np.any(np.abs(d[mask]) > 0.1)


def test_estimate_network_trains_on_the_spoiled_truth_and_infers_with_the_search(config,
                                                                                monkeypatch):
    """estimate_unet: its training step never runs the search (it undoes the spoiled true
    displacement), is traced once and learns; at inference it undoes the search's estimate,
    and a displacement the search already found gives the same output."""
    from kmri_jax import correct

    config.model.kind = "estimate_unet"
    tx = optax.adam(3e-3)
    state, defs = create_state(0, model_config=config.model, tx=tx)
    network = Network(kind="estimate_unet", estimate_options=CHEAP_ESTIMATE, spoil=(0.3, 0.3))
    step_fn = make_train_step(defs, tx, loss_fn=losses.get_loss("image_l1"),
                              corruption=Corruption(mode="fixed"), network=network,
                              fixed_root=jax.random.key(1))
    search = correct.estimate_motion

    def no_search(*args, **kwargs):
        raise AssertionError("the training step ran the motion search")

    monkeypatch.setattr(correct, "estimate_motion", no_search)
    traces = []

    def counted(state, batch):
        traces.append(1)
        return step_fn(state, batch)

    step = jax.jit(counted, donate_argnums=0)
    fixed = _batch(np.random.default_rng(0))
    seen = []
    for _ in range(12):
        state, metrics = step(state, fixed)
        seen.append(float(metrics["loss"]))
    assert len(traces) == 1 and np.all(np.isfinite(seen)) and "disp_l1" not in metrics
    assert np.mean(seen[-3:]) < 0.95 * np.mean(seen[:3])
    monkeypatch.setattr(correct, "estimate_motion", search)

    c = Corruption().corrupt_batch(jax.random.key(1), fixed, mode="fixed")[0]
    scale = jnp.max(jnp.abs(c.kspace), axis=(-2, -1)) + 1e-8
    run = _run(defs, state)
    searched = jax.vmap(lambda k, m: search(k, m, **dict(CHEAP_ESTIMATE)))(c.kspace, c.mask)
    pred, d = forward(run, c.kspace, c.mask, scale, kind="estimate_unet",
                      estimate_options=dict(CHEAP_ESTIMATE))
    again, _ = forward(run, c.kspace, c.mask, scale, kind="estimate_unet", searched=searched)
    assert d is None
    np.testing.assert_allclose(np.asarray(again), np.asarray(pred), atol=1e-5)
    # what the image network read: the search's displacement undone (not the corrupted input)
    image_net = forward(run, correct.undo_motion(c.kspace, searched), c.mask, scale,
                        kind="image_unet")[0]
    np.testing.assert_allclose(np.asarray(image_net), np.asarray(pred), atol=1e-5)
