"""Joint stage: alternate a TV-regularised reconstruction and an exact per-unit shift search.

Objective (b = normalised k-space, F = unitary centred 2-D FFT, x real >= 0)::

    J(x, p) = sum_acquired |F(x)[ky] - b[ky] e^{2 pi i d[ky] u}|^2 / (2 sigma^2)
              + lam * TV(x) / sigma^2 + sum_acquired (d[ky] - mu)^2 / (2 s^2),
    d[ky] = p[unit[ky]] + offset[ky].

The x-step runs a few Condat-Vu primal-dual iterations (warm-started) for ``lam`` decreasing
geometrically over the outer iterations. The p-step is separable over units: each unit
maximises the sum over its lines of ``Re sum_kx b e^{2 pi i d u} conj(F(x))`` / sigma^2 minus
the Gaussian prior, by a grid search over ``mu +- max_shift`` then Newton steps, so every
update is a global 1-D search. The prior's ``mu`` and ``s`` are the mean and spread of the
strongest units' lines (the k-space centre). Group moves: at the given iterations, energy
bands of units (strongest anchor, then bands of doubling size) whose mean displacement is
significantly off the stronger lines' mean are shifted back as a block; this escapes the
block-shifted solutions that per-line updates cannot leave (e.g. a quasi-periodic structure
along the readout, where all outer lines shifted by one period look almost as sharp).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kmri_jax.correct.units import ramp
from kmri_jax.sim.motion import readout_frequencies

_TAU, _SIGMA = 0.5, 0.18        # Condat-Vu steps: 1/tau - 8*sigma >= L/2 with L = 1


def forward(x: jax.Array) -> jax.Array:
    """Real ``[ny, nx]`` image -> unitary centred k-space ``[ny, nx] complex64``."""
    n = x.shape[-1] * x.shape[-2]
    k = jnp.fft.fft2(x.astype(jnp.complex64))
    return jnp.fft.fftshift(k, axes=(-2, -1)) / math.sqrt(n)


def adjoint(k: jax.Array) -> jax.Array:
    """Adjoint (= inverse) of :func:`forward`, complex ``[ny, nx]``."""
    n = k.shape[-1] * k.shape[-2]
    return jnp.fft.ifft2(jnp.fft.ifftshift(k, axes=(-2, -1))) * math.sqrt(n)


def _grad(x: jax.Array) -> jax.Array:
    return jnp.stack([jnp.roll(x, -1, 0) - x, jnp.roll(x, -1, 1) - x])


def _grad_t(g: jax.Array) -> jax.Array:
    return (jnp.roll(g[0], 1, 0) - g[0]) + (jnp.roll(g[1], 1, 1) - g[1])


def tv_reconstruct(
    b: jax.Array, mask: jax.Array, lam: jax.Array, x: jax.Array, y: jax.Array, n_iter: int
) -> tuple[jax.Array, jax.Array]:
    """``n_iter`` Condat-Vu iterations of ``min 0.5|M F x - b|^2 + lam TV(x)``, x real >= 0.

    Args:
      b: ``[ny, nx] complex64`` target k-space (motion undone), zero off the mask.
      mask: ``[ny] bool``.
      lam: TV weight (scalar).
      x, y: warm start, ``[ny, nx]`` primal and ``[2, ny, nx]`` dual.
      n_iter: iterations (static).

    Returns:
      ``(x, y)`` after the iterations.
    """
    m = mask[:, None]

    def body(_, carry):
        x, y = carry
        r = jnp.where(m, forward(x) - b, 0.0)
        xn = jnp.maximum(x - _TAU * (jnp.real(adjoint(r)) + _grad_t(y)), 0.0)
        yb = y + _SIGMA * _grad(2.0 * xn - x)
        norm = jnp.sqrt(jnp.sum(yb**2, 0, keepdims=True))
        return xn, yb / jnp.maximum(1.0, norm / lam)

    return jax.lax.fori_loop(0, n_iter, body, (x, y))


def joint_refine(
    b: jax.Array,
    mask: jax.Array,
    unit: jax.Array,
    offset: jax.Array,
    rank: jax.Array,
    p0: jax.Array,
    sigma2: jax.Array,
    *,
    n_anchor: int,
    max_shift: float,
    n_outer: int,
    n_inner: int,
    tv_weight: tuple[float, float],
    step: float,
    prior: bool,
    group_moves: tuple[int, ...],
    group_z: float = 2.0,
    posterior_mean: bool = True,
) -> jax.Array:
    """Alternating minimisation of the joint objective; returns unit parameters ``p [ny]``.

    Args:
      b: ``[ny, nx] complex64`` k-space, unitary scale, image max ~ 1, zero off the mask.
      mask: ``[ny] bool``.
      unit, offset, rank: ``[ny]`` units (see :mod:`~kmri_jax.correct.units`).
      p0: ``[ny]`` initial unit parameters.
      sigma2: noise variance per k-space sample of ``b``.
      n_anchor: the strongest ``n_anchor`` units set the prior and anchor the group moves.
      max_shift: the unit search spans ``mu +- max_shift`` px.
      n_outer, n_inner: outer iterations and TV iterations per outer iteration (static).
      tv_weight: ``(first, last)`` TV weight, geometric schedule.
      step: grid step of the unit search, px (then Newton).
      prior: use the Gaussian displacement prior (else a flat one).
      group_moves: outer iterations before which group moves are tried.
      group_z: a band moves when its mean is this many standard errors off.
      posterior_mean: in the last iteration return each unit's posterior mean over the grid
        (``softmax`` of the unit objective) instead of its maximum: the same for well-measured
        units, shrinkage towards ``mu`` for units whose data are at the noise level.
    """
    ny, nx = b.shape
    u = readout_frequencies(nx)
    w = 2.0 * math.pi * u
    grid = jnp.arange(-max_shift, max_shift + 1e-6, step, dtype=jnp.float32)
    lam0, lam1 = tv_weight
    lams = lam0 * (lam1 / lam0) ** (jnp.arange(n_outer, dtype=jnp.float32) / max(n_outer - 1, 1))
    anchor_line = mask & (rank[unit] < n_anchor)
    n_a = jnp.maximum(jnp.sum(anchor_line), 1)
    scale = 1.0 / sigma2
    n_bands = int(math.ceil(math.log2(max(ny / max(n_anchor, 1), 2.0)))) + 1

    def seg(v: jax.Array) -> jax.Array:
        return jax.ops.segment_sum(v, unit, num_segments=ny)

    def group_move(p: jax.Array) -> jax.Array:
        d = p[unit] + offset
        n = jnp.maximum(jnp.sum(mask), 1)
        mean = jnp.sum(jnp.where(mask, d, 0.0)) / n
        s = jnp.sqrt(jnp.sum(jnp.where(mask, (d - mean) ** 2, 0.0)) / n) + 1e-6
        lo = n_anchor
        for k in range(n_bands):
            hi = n_anchor * 2 ** (k + 1)
            stronger = mask & (rank[unit] < lo)
            band = mask & (rank[unit] >= lo) & (rank[unit] < hi)
            ns, nb = jnp.maximum(jnp.sum(stronger), 1), jnp.sum(band)
            diff = (jnp.sum(jnp.where(band, d, 0.0)) / jnp.maximum(nb, 1)
                    - jnp.sum(jnp.where(stronger, d, 0.0)) / ns)
            z = diff / (s * jnp.sqrt(1.0 / ns + 1.0 / jnp.maximum(nb, 1)))
            shift = jnp.where((nb > 0) & (jnp.abs(z) > group_z), diff, 0.0)
            p = p - jnp.where((rank >= lo) & (rank < hi), shift, 0.0)
            d = p[unit] + offset
            lo = hi
        return p

    def outer(i: jax.Array, carry):
        x, y, p = carry
        for gi in group_moves:
            if gi < n_outer:
                p = jax.lax.cond(i == gi, group_move, lambda q: q, p)
        d = p[unit] + offset
        x, y = tv_reconstruct(b * ramp(d, u), mask, lams[i], x, y, n_inner)
        prod = b * jnp.conj(forward(x))                                 # [ny, nx]
        da = jnp.where(anchor_line, d, 0.0)
        mu = jnp.sum(da) / n_a
        if prior:
            spread = jnp.sqrt(jnp.sum(jnp.where(anchor_line, (d - mu) ** 2, 0.0)) / n_a)
            inv_s2 = 1.0 / jnp.clip(spread, 0.5, max_shift) ** 2
        else:
            inv_s2 = jnp.zeros(())
        cand = grid + mu
        corr = jnp.real((prod * ramp(offset, u)) @ ramp(cand, u).T)     # [ny, C] at cand+offset
        dl = cand[None, :] + offset[:, None]
        obj = jnp.where(mask[:, None], corr * scale - 0.5 * inv_s2 * (dl - mu) ** 2, 0.0)
        obj_u = seg(obj)                                                # [ny units, C]
        best = jnp.argmax(obj_u, -1)
        p_new = cand[best]
        p_grid = p_new
        for _ in range(3):
            dl = p_new[unit] + offset
            e = prod * ramp(dl, u)
            g1 = jnp.real(jnp.sum(e * (1j * w), -1)) * scale - inv_s2 * (dl - mu)
            g2 = jnp.real(jnp.sum(e * (-(w**2)), -1)) * scale - inv_s2
            f1 = seg(jnp.where(mask, g1, 0.0))
            f2 = seg(jnp.where(mask, g2, 0.0))
            p_new = p_new + jnp.clip(jnp.where(f2 < 0, -f1 / jnp.minimum(f2, -1e-30), 0.0),
                                     -step, step)
        if posterior_mean:
            post = jax.nn.softmax(obj_u, axis=-1)
            shrunk = p_new + jnp.sum(post * (cand[None, :] - p_grid[:, None]), -1)
            p_new = jnp.where(i == n_outer - 1, shrunk, p_new)
        return x, y, p_new

    x0 = jnp.zeros((ny, nx), jnp.float32)
    y0 = jnp.zeros((2, ny, nx), jnp.float32)
    _, _, p = jax.lax.fori_loop(0, n_outer, outer, (x0, y0, p0.astype(jnp.float32)))
    return p
