"""Shared helpers: readout ramps, Hermitian line pairs, displacement units.

A *unit* is a set of phase-encode lines that move together: line ``ky`` has displacement
``p[unit[ky]] + offset[ky]``, with one free parameter ``p`` per unit and fixed per-line
offsets. Units are labelled by an index in ``[0, ny)`` so that every array has a static shape;
labels that no acquired line uses are empty.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kmri_jax.sim.motion import readout_frequencies
from kmri_jax.sim.phasor import cis_turns


def ramp(displacement: jax.Array, u: jax.Array) -> jax.Array:
    """``exp(+2*pi*i * d * u)``: ``[...]`` px and ``[nx]`` -> ``[..., nx] complex64``.

    Multiplying a line by this ramp undoes a displacement ``d`` of ``sim.apply_motion``.
    """
    return cis_turns(displacement.astype(jnp.float32)[..., None] * u)


def mirror_index(n: int) -> jax.Array:
    """Index of the conjugate-symmetric partner in a centred axis of length ``n``, ``[n] int``.

    Frequency ``k - n//2`` at index ``k`` mirrors to ``n//2 - (k - n//2)`` (mod ``n``).
    """
    return (2 * (n // 2) - jnp.arange(n)) % n


def noise_variance(kspace: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-sample noise variance estimate, scalar.

    Median over acquired lines of the mean power at high readout frequencies
    (``|u| > 0.375``), where the signal of a typical image is far below the noise; image
    content there only makes the estimate larger (conservative).
    """
    u = readout_frequencies(kspace.shape[-1])
    high = jnp.abs(u) > 0.375
    power = jnp.sum(jnp.where(high, jnp.abs(kspace) ** 2, 0.0), -1) / jnp.sum(high)
    return jnp.nanmedian(jnp.where(mask, power, jnp.nan))


def hermitian_pairs(
    kspace: jax.Array, mask: jax.Array, *, max_shift: float, sigma2: jax.Array,
    min_snr: float = 5.0,
) -> tuple[jax.Array, jax.Array]:
    """Relative displacement of conjugate line pairs of a real image.

    For a real image ``K0[-ky, -kx] = conj(K0[ky, kx])``, so after motion
    ``K[ky, kx] * K[-ky, -kx] = |K0[ky, kx]|^2 exp(-2*pi*i (d[ky] - d[-ky]) u)``: the phase
    slope gives ``delta = d[ky] - d[-ky]`` (grid search of the real part over
    ``[-2 max_shift, 2 max_shift]`` then Newton steps). Pairs whose correlation peak is below
    ``min_snr`` noise standard deviations are not paired.

    Args:
      kspace: ``[ny, nx] complex64`` corrupted k-space.
      mask: ``[ny] bool`` acquired lines.
      max_shift: largest displacement magnitude, px.
      sigma2: per-sample noise variance (see :func:`noise_variance`).
      min_snr: detection threshold of the pair correlation.

    Returns:
      ``(delta [ny] float32, paired [ny] bool)``; ``delta[ky] = d[ky] - d[mirror(ky)]``.
    """
    ny, nx = kspace.shape
    my, mx = mirror_index(ny), mirror_index(nx)
    u = readout_frequencies(nx)
    valid_x = mx != jnp.arange(nx)          # drop the self-mirrored (Nyquist, DC) columns
    prod = jnp.where(valid_x, kspace * kspace[my][:, mx], 0.0)
    step = 0.25
    cand = jnp.arange(-2.0 * max_shift, 2.0 * max_shift + 1e-6, step, dtype=jnp.float32)
    score = jnp.real(prod @ ramp(cand, u).T)                        # [ny, C]
    delta = cand[jnp.argmax(score, -1)]
    w = 2.0 * math.pi * u
    for _ in range(4):
        e = prod * ramp(delta, u)
        g1 = jnp.real(jnp.sum(e * (1j * w), -1))
        g2 = jnp.real(jnp.sum(e * (-(w**2)), -1))
        delta = delta + jnp.clip(jnp.where(g2 < 0, -g1 / jnp.minimum(g2, -1e-30), 0.0), -step, step)
    peak = jnp.real(jnp.sum(prod * ramp(delta, u), -1))
    power = jnp.sum(jnp.where(valid_x, jnp.abs(kspace) ** 2 + jnp.abs(kspace[my][:, mx]) ** 2, 0), -1)
    noise_std = jnp.sqrt(0.5 * sigma2 * power + 1e-30)
    paired = mask & mask[my] & (my != jnp.arange(ny)) & (peak > min_snr * noise_std)
    return jnp.where(paired, delta, 0.0), paired


def line_units(
    mask: jax.Array, *, paired: jax.Array | None = None, delta: jax.Array | None = None,
    line_groups: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Unit label and fixed offset of every line, ``([ny] int32, [ny] float32)``.

    ``line_groups`` (``[ny]`` ints in ``[0, ny)``) takes precedence: one unit per group, zero
    offsets. Otherwise each line is its own unit, except Hermitian pairs (``paired``), which
    share the unit of their lower index with offsets ``+-delta/2``.
    """
    ny = mask.shape[0]
    ar = jnp.arange(ny)
    if line_groups is not None:
        unit = jnp.clip(jnp.asarray(line_groups).astype(jnp.int32), 0, ny - 1)
        return unit, jnp.zeros(ny, jnp.float32)
    if paired is None:
        return ar.astype(jnp.int32), jnp.zeros(ny, jnp.float32)
    unit = jnp.where(paired, jnp.minimum(ar, mirror_index(ny)), ar).astype(jnp.int32)
    return unit, jnp.where(paired, 0.5 * delta, 0.0).astype(jnp.float32)


def unit_ranks(kspace: jax.Array, mask: jax.Array, unit: jax.Array) -> jax.Array:
    """Rank of each unit by acquired energy (0 = strongest), ``[ny] int32``; empty units rank
    after all others."""
    ny = mask.shape[0]
    energy = jnp.where(mask, jnp.sum(jnp.abs(kspace) ** 2, -1), 0.0)
    count = jax.ops.segment_sum(mask.astype(jnp.int32), unit, num_segments=ny)
    nonempty = count > 0
    ue = jnp.where(nonempty, jax.ops.segment_sum(energy, unit, num_segments=ny), -1.0)
    return jnp.argsort(jnp.argsort(-ue)).astype(jnp.int32)


def line_displacement(p: jax.Array, unit: jax.Array, offset: jax.Array) -> jax.Array:
    """Per-line displacement ``p[unit] + offset``, ``[ny]``."""
    return p[unit] + offset


def unit_mean(values: jax.Array, mask: jax.Array, unit: jax.Array) -> jax.Array:
    """Mean of per-line ``values`` over the acquired lines of each unit, ``[ny]`` (0 if empty)."""
    ny = mask.shape[0]
    s = jax.ops.segment_sum(jnp.where(mask, values, 0.0), unit, num_segments=ny)
    n = jax.ops.segment_sum(mask.astype(jnp.float32), unit, num_segments=ny)
    return s / jnp.maximum(n, 1.0)


def clip_strongest_to_range(
    p: jax.Array, mask: jax.Array, unit: jax.Array, offset: jax.Array, rank: jax.Array, *,
    n_strongest: int, margin: float,
) -> jax.Array:
    """Keep the ``n_strongest`` units inside the range the other lines span: unit parameters
    ``p [ny]`` -> ``[ny]``.

    Every line samples the same breathing trace, so a strong unit cannot sit far outside the
    range ``[lo, hi]`` of the other acquired lines' displacements ``p[unit] + offset``. A
    strong unit whose mean line displacement lies outside ``[lo - m, hi + m]``,
    ``m = margin * (hi - lo)``, moves to the nearest end of that interval (its lines keep
    their offsets); nothing moves when fewer than two other lines are acquired.
    """
    d = p[unit] + offset
    strong = rank < n_strongest                                     # [ny] per unit
    other = mask & ~strong[unit]
    lo = jnp.min(jnp.where(other, d, jnp.inf))
    hi = jnp.max(jnp.where(other, d, -jnp.inf))
    m = margin * (hi - lo)
    position = unit_mean(d, mask, unit)                             # [ny] per unit
    moved = jnp.clip(position, lo - m, hi + m) - position
    enough = jnp.sum(other) >= 2
    return jnp.where(strong & enough, p + moved, p)
