"""The composed corruption: parts against numpy, batching, recompilation, gradients, params."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from kmri_jax import sim

NY, NX = 16, 24


def _image(seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((NY, NX)).astype(dtype)


def test_pipeline_parts_match_numpy():
    x = _image()
    params = sim.CorruptionParams(amplitude_px=5.0, rate_bpm=15.0, acceleration=4.0,
                                  snr_db=20.0, tr=2.5, te=0.03)
    out = sim.corrupt(jax.random.key(0), x, params)
    clean = np.fft.fftshift(np.fft.fft2(x.astype(np.float64)))
    np.testing.assert_allclose(np.asarray(out.clean), clean, rtol=1e-5, atol=1e-4)
    assert out.kspace.dtype == jnp.complex64 and out.kspace.shape == (NY, NX)
    mask = np.asarray(out.mask)
    assert mask.sum() == 1 + (NY - 1) // 4
    np.testing.assert_allclose(np.asarray(out.displacement), 5.0 * np.asarray(out.trace),
                               rtol=1e-6)
    assert abs(np.abs(np.asarray(out.trace)).max() - 1) < 1e-6
    kc = np.asarray(out.kspace)
    np.testing.assert_array_equal(kc[~mask], 0)
    # Acquired lines: numpy phase ramp of the clean k-space plus noise of the formula's size.
    u = np.fft.fftshift(np.fft.fftfreq(NX))
    moved = clean * np.exp(-2j * np.pi * np.asarray(out.displacement, np.float64)[:, None] * u)
    residual = kc[mask] - moved[mask]
    sigma = np.sqrt(np.mean(np.abs(moved[mask]) ** 2)) / 10
    assert 0.7 < np.sqrt(np.mean(np.abs(residual) ** 2)) / sigma < 1.3  # few samples: loose


def _batch(b=4, seed=0):
    images = np.random.default_rng(seed).random((b, NY, NX)).astype(np.float32)
    return images, jax.random.split(jax.random.key(seed), b)


def test_jit_vmap_equals_per_sample_loop():
    images, keys = _batch()
    params = sim.CorruptionParams(
        amplitude_px=jnp.array([2.0, 5.0, 8.0, 3.3]), rate_bpm=jnp.array([12.0, 15.0, 18.0, 20.0]),
        acceleration=jnp.array([2.0, 4.0, 6.0, 1.0]), snr_db=jnp.array([15.0, 20.0, 25.0, 30.0]),
        tr=jnp.array([2.5, 2.0, 3.0, 1.0]), te=jnp.array([0.03, 0.01, 0.1, 0.0]))
    batched = jax.jit(jax.vmap(sim.corrupt))(keys, images, params)
    for i in range(len(images)):
        one = sim.corrupt(keys[i], images[i], jax.tree.map(lambda leaf: leaf[i], params))
        np.testing.assert_array_equal(np.asarray(batched.mask[i]), np.asarray(one.mask))
        for field in ("kspace", "clean", "displacement", "trace"):
            a, b = np.asarray(getattr(batched, field)[i]), np.asarray(getattr(one, field))
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_new_parameter_values_do_not_recompile():
    traces = []

    def step(keys, images, params):
        traces.append(1)
        return jax.vmap(sim.corrupt)(keys, images, params)

    fn = jax.jit(step)
    images, keys = _batch()
    rng = np.random.default_rng(0)
    for _ in range(3):
        params = sim.CorruptionParams(*(rng.uniform(lo, hi, 4).astype(np.float32) for lo, hi in
                                        [(2, 8), (12, 18), (1, 6), (15, 25), (1, 3), (0, 0.1)]))
        out = fn(keys, images, params)
        counts = np.asarray(out.mask).sum(axis=1)
        expected = [1 + int(np.floor(15 / r)) for r in np.asarray(params.acceleration)]
        np.testing.assert_array_equal(counts, expected)
    assert len(traces) == 1


def test_gradients_match_central_differences_float64():
    with jax.enable_x64(True):
        x = jnp.asarray(_image(3, np.float64))
        w = jnp.asarray(np.random.default_rng(4).normal(size=(NY, NX)))
        key = jax.random.key(9)

        def loss(image, amplitude):
            params = sim.CorruptionParams(amplitude, 15.0, 2.0, 20.0, 2.5, 0.03)
            out = sim.corrupt(key, image, params)
            value = jnp.sum(w * jnp.abs(out.kspace - 0.5 * jnp.sum(image))) / (NY * NX)
            return value, out.kspace.dtype == jnp.complex128

        # One compiled function gives both the gradients and the values for the differences.
        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        f = lambda image, amplitude: value_and_grad(image, amplitude)[0][0]  # noqa: E731
        amplitude = jnp.float64(5.0)
        (_, is_complex128), (g_image, g_amp) = value_and_grad(x, amplitude)
        assert bool(is_complex128)
        h = 1e-6
        fd_amp = (f(x, amplitude + h) - f(x, amplitude - h)) / (2 * h)
        assert abs(g_amp - fd_amp) <= 1e-4 * abs(fd_amp)
        rng = np.random.default_rng(5)
        for _ in range(3):  # random directions
            v = jnp.asarray(rng.normal(size=(NY, NX)))
            fd = (f(x + h * v, amplitude) - f(x - h * v, amplitude)) / (2 * h)
            assert abs(jnp.vdot(g_image, v) - fd) <= 1e-4 * abs(fd)
        for i, j in [(0, 0), (7, 11), (15, 23)]:  # single pixels
            e = jnp.zeros((NY, NX)).at[i, j].set(1.0)
            fd = (f(x + h * e, amplitude) - f(x - h * e, amplitude)) / (2 * h)
            assert abs(g_image[i, j] - fd) <= 1e-4 * abs(fd)
    assert jnp.asarray(1.0).dtype == jnp.float32  # x64 did not leak


def test_grid_params_order_matches_itertools_product():
    reference = list(itertools.product(*sim.SEED_GRID))
    params = jax.jit(sim.grid_params)(jnp.arange(81))
    got = np.stack([np.asarray(leaf) for leaf in params[:4]], axis=1)
    np.testing.assert_array_equal(got, np.asarray(reference, np.float32))
    np.testing.assert_allclose(np.asarray(params.tr), 2.5)
    np.testing.assert_allclose(np.asarray(params.te), 0.03)
    single = sim.grid_params(80, tr=1.5)
    assert tuple(float(v) for v in single[:4]) == reference[80] and float(single.tr) == 1.5
    with pytest.raises(ValueError, match="0..80"):
        sim.grid_params(81)


def test_sample_params_grid_is_uniform_over_81_combinations():
    b = 8100
    p = jax.jit(lambda k: sim.sample_params(k, b))(jax.random.key(0))
    assert all(np.shape(leaf) == (b,) for leaf in p)
    combos = {c: i for i, c in enumerate(itertools.product(*sim.SEED_GRID))}
    idx = np.array([combos[tuple(row)] for row in np.stack([np.asarray(l) for l in p[:4]], 1)
                    .tolist()])
    counts = np.bincount(idx, minlength=81)
    assert stats.chisquare(counts).pvalue > 1e-3
    np.testing.assert_allclose(np.asarray(p.tr), 2.5)


def test_sample_params_uniform_ranges_and_per_sample_tr():
    b = 2000
    tr = jnp.linspace(1.0, 3.0, b)
    p = sim.sample_params(jax.random.key(1), b, tr=tr, te=0.01, distribution="uniform")
    bounds = [(2, 8), (12, 18), (2, 6), (15, 25)]
    for leaf, (lo, hi) in zip(p[:4], bounds):
        v = np.asarray(leaf)
        assert v.min() >= lo and v.max() <= hi
        assert stats.kstest(v, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(np.asarray(p.tr), np.asarray(tr))
    custom = sim.ParamGrid((0.0, 1.0), (10.0, 11.0), (1.0, 1.5), (30.0, 31.0))
    q = sim.sample_params(jax.random.key(2), 64, distribution="uniform", ranges=custom)
    assert float(q.acceleration.max()) <= 1.5 and float(q.snr_db.min()) >= 30.0
