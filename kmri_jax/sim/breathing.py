"""Respiratory traces sampled at the acquisition time of each phase-encode line.

Two models (docs/conventions.md):

* ``"sinusoidal"``: ``r(t) = sin(2*pi*f*t/60)`` with ``f`` in breaths/min.
* ``"breathmetrics"``: the stochastic breathing model of neurokit2's
  ``rsp_simulate(method="breathmetrics")`` (after Noto et al. 2018), written from its
  description. Cycle ``i`` has length ``L_i ~ N(P, (0.1P)^2)`` (clipped at ``0.2P``),
  ``P = 60/f`` s; amplitude ``a_i ~ N(0.5, 0.05^2)`` clipped at 0; an inhale pause and an
  exhale pause, each present with probability 0.3, of length ``~ N(0.2P, (0.1P)^2)`` clipped
  at 0. A pause is dropped when keeping it would leave less than half the cycle for breathing.
  The remaining breath time ``b_i = L_i - pauses`` carries one sine period scaled by ``a_i``:
  positive half (inhale), inhale pause, negative half (exhale), exhale pause. The first cycle
  starts at ``t = 0``.

Smoothing, evaluated exactly at arbitrary times. The raw trace is smoothed with a moving
average (box window) of width ``smoothing_s`` (0.5 s by default). Line times are TR apart
(often seconds), far coarser than the window, so instead of filtering a fine grid we use the
closed form: each full cycle integrates to zero (the inhale and exhale halves cancel), so the
running integral is ``F(t) = a*b/(2*pi) * (1 - cos(2*pi*phi(t)/b))`` within the current
cycle, with ``phi`` the breath time elapsed excluding pauses, and the box-smoothed trace is
exactly ``(F(t + w/2) - F(t - w/2)) / w``. No grid, no approximation, any sample times.

Fixed shapes. Cycles are drawn up front, a static ``max_cycles`` of them (default 1024),
placed with ``cumsum`` and looked up with ``searchsorted``; the rate only changes values, never
shapes, so a traced per-sample rate is fine. The budget covers traces up to about
``0.9 * max_cycles`` breaths: at 424 lines x TR 2.5 s (1060 s) that is any rate up to ~52/min
with the default (a 1060 s trace at 20/min needs ~353 cycles). Past the last drawn cycle the
raw trace is 0. When ``times`` and ``rate_bpm`` are concrete this is checked and raises
``ValueError``; under ``jit`` the check is skipped, so raise ``max_cycles`` for longer traces.
Cost: drawing 1024 cycles is ~6k random numbers per trace, negligible next to the FFTs.

Small noise: white Gaussian noise of standard deviation ``noise_std`` times the model's
nominal amplitude (1 for sinusoidal, 0.5 for breathmetrics) is added at each sample time
before normalisation. Finally ``r / (max|r| + 1e-8)`` so that ``max|r| = 1`` over ``times``.

Note (seed model, kept as is): lines TR = 2.5 s apart sample the trace at 0.4 Hz, i.e. a
Nyquist rate of 12 breaths/min, so at the seed's rates the per-line displacement is an
aliased, irregular-looking sequence rather than a visible slow wave.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim import validation
from kmri_jax.sim.timing import line_times  # noqa: F401  (kept importable from here)

METHODS = ("sinusoidal", "breathmetrics")

# breathmetrics model constants (fractions of the mean period P unless noted).
_AMP_MEAN, _AMP_STD = 0.5, 0.05
_LEN_STD = 0.1
_MIN_LEN = 0.2
_PAUSE_PROB = 0.3
_PAUSE_MEAN, _PAUSE_STD = 0.2, 0.1
_MIN_BREATH_FRACTION = 0.5


def _float_dtype(*xs: object) -> jnp.dtype:
    """Float dtype of the inputs, at least float32 (python scalars are weak)."""
    return jnp.result_type(*xs, jnp.float32)


def _breathmetrics_cycles(
    key: jax.Array, period: jax.Array, max_cycles: int, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Draw ``max_cycles`` cycles, each ``[max_cycles]``: (ends, starts, amplitude, breath
    length, inhale pause), times in seconds."""
    k_normal, k_uniform = jax.random.split(key)
    z_len, z_amp, z_in, z_ex = jax.random.normal(k_normal, (4, max_cycles), dtype)
    present_in, present_ex = jax.random.uniform(k_uniform, (2, max_cycles), dtype) < _PAUSE_PROB
    length = period * jnp.maximum(1.0 + _LEN_STD * z_len, _MIN_LEN)
    amp = jnp.maximum(_AMP_MEAN + _AMP_STD * z_amp, 0.0)

    def pause(present: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.where(present, period * jnp.maximum(_PAUSE_MEAN + _PAUSE_STD * z, 0.0), 0.0)

    p_in = pause(present_in, z_in)
    p_in = jnp.where(length - p_in >= _MIN_BREATH_FRACTION * length, p_in, 0.0)
    p_ex = pause(present_ex, z_ex)
    p_ex = jnp.where(length - p_in - p_ex >= _MIN_BREATH_FRACTION * length, p_ex, 0.0)
    breath = length - p_in - p_ex
    ends = jnp.cumsum(length)
    starts = ends - length
    return ends, starts, amp, breath, p_in


def _breath_phase(
    t: jax.Array, ends: jax.Array, starts: jax.Array, breath: jax.Array, p_in: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cycle index and breath time ``phi`` elapsed in it at times ``t`` (pauses excluded)."""
    idx = jnp.clip(jnp.searchsorted(ends, t, side="right"), 0, ends.shape[0] - 1)
    s = t - starts[idx]
    b = breath[idx]
    half = 0.5 * b
    phi = jnp.clip(s, 0.0, half) + jnp.clip(s - half - p_in[idx], 0.0, half)
    return idx, phi, b


def _breathmetrics_raw(
    key: jax.Array, times: jax.Array, period: jax.Array, *, max_cycles: int, smoothing_s: float
) -> jax.Array:
    """Unnormalised breathmetrics trace at ``times`` ``[n]``, box-smoothed if ``smoothing_s``."""
    dtype = times.dtype
    ends, starts, amp, breath, p_in = _breathmetrics_cycles(key, period, max_cycles, dtype)
    two_pi = 2.0 * math.pi
    if smoothing_s > 0:
        def running_integral(t):
            idx, phi, b = _breath_phase(t, ends, starts, breath, p_in)
            return amp[idx] * b / two_pi * (1.0 - jnp.cos(two_pi * phi / b))

        half_w = 0.5 * smoothing_s
        upper, lower = running_integral(jnp.stack([times + half_w, times - half_w]))
        return (upper - lower) / smoothing_s
    idx, phi, b = _breath_phase(times, ends, starts, breath, p_in)
    s = times - starts[idx]
    half = 0.5 * b
    in_pause = ((s >= half) & (s < half + p_in[idx])) | (s >= b + p_in[idx]) | (s < 0)
    return jnp.where(in_pause, 0.0, amp[idx] * jnp.sin(two_pi * phi / b))


def breathing_trace(
    key: jax.Array,
    times: jax.Array,
    *,
    rate_bpm: jax.typing.ArrayLike,
    method: str = "breathmetrics",
    max_cycles: int = 1024,
    smoothing_s: float = 0.5,
    noise_std: float = 0.01,
) -> jax.Array:
    """Respiratory trace at ``times``, normalised so that ``max|r| = 1``.

    Args:
      key: PRNG key (cycle variability and noise).
      times: ``[n]`` float sample times in seconds (e.g. :func:`line_times`).
      rate_bpm: mean breathing rate in breaths/min (scalar, may be traced).
      method: ``"breathmetrics"`` (stochastic cycles with pauses) or ``"sinusoidal"``.
      max_cycles: static number of cycles drawn (breathmetrics); see the module docstring.
      smoothing_s: moving-average window in seconds (breathmetrics); 0 disables it.
      noise_std: white noise std relative to the nominal breath amplitude; 0 disables it.

    Returns:
      ``[n]`` trace in the dtype of ``times`` (at least float32), ``r / (max|r| + 1e-8)``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    times = jnp.asarray(times)
    times = times.astype(_float_dtype(times))
    if times.ndim != 1:
        raise ValueError(f"times must be 1-D [n]; got shape {tuple(times.shape)}.")
    if int(max_cycles) < 1:
        raise ValueError(f"max_cycles must be a positive int; got {max_cycles!r}.")
    if smoothing_s < 0:
        raise ValueError(f"smoothing_s must be >= 0; got {smoothing_s!r}.")
    if validation.is_concrete(rate_bpm) and not np.all(np.asarray(rate_bpm) > 0):
        raise ValueError(f"rate_bpm must be > 0 breaths/min; got {rate_bpm!r}.")
    rate = jnp.asarray(rate_bpm, times.dtype)
    if rate.ndim:
        raise ValueError("rate_bpm must be a scalar; use jax.vmap for a batch.")
    if method == "breathmetrics":
        validation.check_cycle_budget(times, rate_bpm, int(max_cycles), smoothing_s)
    return _breathing_trace(
        key, times, rate, method=method, max_cycles=int(max_cycles),
        smoothing_s=float(smoothing_s), noise_std=float(noise_std),
    )


@functools.partial(
    jax.jit, static_argnames=("method", "max_cycles", "smoothing_s", "noise_std")
)
def _breathing_trace(
    key: jax.Array,
    times: jax.Array,
    rate: jax.Array,
    *,
    method: str,
    max_cycles: int,
    smoothing_s: float,
    noise_std: float,
) -> jax.Array:
    """:func:`breathing_trace` on checked inputs (compiled once per shape/options)."""
    k_cycles, k_noise = jax.random.split(key)
    if method == "sinusoidal":
        raw = jnp.sin(2.0 * math.pi * rate / 60.0 * times)
        nominal = 1.0
    else:
        raw = _breathmetrics_raw(
            k_cycles, times, 60.0 / rate, max_cycles=max_cycles, smoothing_s=smoothing_s
        )
        nominal = _AMP_MEAN
    if noise_std > 0:
        raw = raw + noise_std * nominal * jax.random.normal(k_noise, times.shape, times.dtype)
    return raw / (jnp.max(jnp.abs(raw)) + 1e-8)
