"""Breathing traces: line times, dominant frequency, normalisation, fixed shapes, smoothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim

RATES = [12.0, 14.5, 17.0, 20.0]
METHODS = ["sinusoidal", "breathmetrics"]


def test_line_times_formula():
    t = np.asarray(sim.line_times(424, tr=2.5, te=0.03))
    np.testing.assert_allclose(t, np.arange(424) * 2.5 + 0.03, rtol=1e-6)
    t = jax.jit(lambda tr, te: sim.line_times(16, tr=tr, te=te))(1.7, 0.01)
    np.testing.assert_allclose(np.asarray(t), np.arange(16) * 1.7 + 0.01, rtol=1e-6)


def _dominant_rate_bpm(r, dt):
    """Frequency (per minute) of the largest periodogram peak, zero-padded 8x."""
    n = 8 * len(r)
    power = np.abs(np.fft.rfft(r - r.mean(), n=n)) ** 2
    return np.fft.rfftfreq(n, dt)[np.argmax(power)] * 60.0


@pytest.fixture(scope="module")
def long_traces():
    """Traces over 600 s at 4 Hz for every (method, rate), computed in one jitted vmap."""
    dt = 0.25
    times = jnp.arange(0.0, 600.0, dt)
    out = {}
    for method in METHODS:
        fn = jax.jit(jax.vmap(
            lambda key, f, m=method: sim.breathing_trace(key, times, rate_bpm=f, method=m)))
        keys = jax.random.split(jax.random.key(11), len(RATES))
        out[method] = np.asarray(fn(keys, jnp.asarray(RATES)))
    return dt, out


@pytest.mark.parametrize("method", METHODS)
def test_dominant_frequency_within_5_percent(long_traces, method):
    dt, traces = long_traces
    for rate, r in zip(RATES, traces[method]):
        assert abs(_dominant_rate_bpm(r, dt) / rate - 1) < 0.05, (method, rate)


@pytest.mark.parametrize("method", METHODS)
def test_finite_and_unit_peak(long_traces, method):
    _, traces = long_traces
    for r in traces[method]:
        assert np.all(np.isfinite(r))
        assert abs(np.max(np.abs(r)) - 1.0) < 1e-6


def test_breathmetrics_shape_statistics(long_traces):
    """Loose version of the neurokit2 figures in docs/conventions.md: mean ~ 0, std ~ 0.5, pauses near zero."""
    _, traces = long_traces
    for r in traces["breathmetrics"]:
        assert abs(r.mean()) < 0.05
        assert 0.4 < r.std() < 0.65
        assert 0.06 < np.mean(np.abs(r) < 0.05) < 0.2
    sine = traces["sinusoidal"][1]  # 14.5/min: not commensurate with the 4 Hz sampling
    assert np.mean(np.abs(sine) < 0.05) < 0.06  # no pauses in a sine (expected ~3%)


@pytest.mark.parametrize("method", METHODS)
def test_same_shape_for_every_rate_no_retrace(method):
    traces = []
    times = sim.line_times(32, tr=2.5, te=0.03)

    def fn(key, rate):
        traces.append(1)
        return sim.breathing_trace(key, times, rate_bpm=rate, method=method)

    jfn = jax.jit(fn)
    outs = [jfn(jax.random.key(0), jnp.float32(f)) for f in (6.0, 12.0, 20.0, 40.0)]
    assert len(traces) == 1
    for out in outs:
        assert out.shape == (32,) and out.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(out)))
        assert abs(float(jnp.max(jnp.abs(out))) - 1.0) < 1e-6


def test_analytic_smoothing_equals_numerical_moving_average():
    """Closed-form box smoothing at coarse times == numpy moving average of the raw trace."""
    key, rate, w, step = jax.random.key(5), 15.0, 0.5, 0.001
    fine = np.arange(0.0, 60.0, step)
    raw = np.asarray(sim.breathing_trace(key, fine, rate_bpm=rate, smoothing_s=0.0,
                                         noise_std=0.0), np.float64)
    half = int(round(w / 2 / step))
    kernel = np.ones(2 * half) / (2 * half)
    # Midpoint sums: the window [t - w/2, t + w/2) holds samples t - w/2 + j*step.
    smoothed_num = np.convolve(raw, kernel, mode="same")
    coarse_idx = np.arange(1000, 59000, 1700)  # irregular-ish coarse times inside the range
    t_coarse = fine[coarse_idx]
    closed = np.asarray(sim.breathing_trace(key, t_coarse, rate_bpm=rate, smoothing_s=w,
                                            noise_std=0.0), np.float64)
    ref = smoothed_num[coarse_idx]
    scale = np.dot(closed, ref) / np.dot(closed, closed)  # the two normalisations differ
    assert np.max(np.abs(scale * closed - ref)) < 5e-3


def test_sinusoidal_formula():
    t = np.linspace(0.0, 30.0, 301)
    r = np.asarray(sim.breathing_trace(jax.random.key(0), t, rate_bpm=15.0, method="sinusoidal",
                                       noise_std=0.0))
    ref = np.sin(2 * np.pi * 15.0 / 60.0 * t)
    np.testing.assert_allclose(r, ref / np.abs(ref).max(), atol=1e-5)


def test_cycle_budget_checked_when_concrete():
    times = sim.line_times(424, tr=2.5, te=0.03)
    sim.breathing_trace(jax.random.key(0), times, rate_bpm=20.0)  # ~353 breaths: fine
    with pytest.raises(ValueError, match="max_cycles"):
        sim.breathing_trace(jax.random.key(0), times, rate_bpm=20.0, max_cycles=256)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method"):
        sim.breathing_trace(jax.random.key(0), jnp.arange(4.0), rate_bpm=15.0, method="x")
