"""Autofocus stage: Gauss-Seidel grid search of a sharpness criterion over the strongest units.

Only the lines of the ``n_focus`` strongest units (the k-space centre, where the energy is)
enter the image, so the criterion sees a low-resolution image that is not yet polluted by the
many unaligned outer lines. The strongest unit is the anchor (displacement 0); every other
unit in turn is tried at each candidate shift on a grid, keeping the one that minimises the
criterion of the whole image (each candidate is one 2-D FFT, batched). After each absolute
sweep, block moves shift all units weaker than the j-th strongest together (j = 1..n_focus-1).

Every candidate image has :func:`focus_rows` rows, whatever the slice's height. A taller
slice uses the centred band of that many k-space rows, where the focused lines lie: the same
band-limited image sampled on fewer rows, so a large slice pays for a smaller image per
candidate (at 424 x 736, 136 rows instead of 424). A shorter slice is zero-padded to it: the
image interpolated on a finer grid, where the criterion sees edges that fall between the
slice's own rows (on the 64 x 96 phantom, 56 / 59 / 53% of the oracle's SSIM gain at
A = 2 / 5 / 8 with 64 rows, 70 / 66 / 59% with 128; docs/correction.md).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kmri_jax import sim
from kmri_jax.correct.units import ramp
from kmri_jax.sim.motion import readout_frequencies

_EPS = 1e-12


def _normalised_entropy(a: jax.Array) -> jax.Array:
    """Entropy of ``a >= 0`` normalised to unit L2 norm over the last two axes, ``[...]``."""
    a = a + _EPS
    a = a / jnp.sqrt(jnp.sum(a**2, (-2, -1), keepdims=True))
    return -jnp.sum(a * jnp.log(a), (-2, -1))


def image_entropy(image: jax.Array) -> jax.Array:
    """Entropy of ``|image|`` (L2-normalised) over the last two axes: ``[..., ny, nx] -> [...]``."""
    return _normalised_entropy(jnp.abs(image))


def gradient_entropy(image: jax.Array) -> jax.Array:
    """Entropy of the gradient magnitude of ``|image|`` (L2-normalised, circular forward
    differences): ``[..., ny, nx] -> [...]``. Lower is sharper."""
    a = jnp.abs(image)
    gy = jnp.roll(a, -1, -2) - a
    gx = jnp.roll(a, -1, -1) - a
    return _normalised_entropy(jnp.sqrt(gx**2 + gy**2 + _EPS))


CRITERIA: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gradient_entropy": gradient_entropy,
    "entropy": image_entropy,
}


def focus_rows(n_focus: int) -> int:
    """Rows of the autofocus images: ``max(128, 8 * n_focus)``, at least four times the rows of
    the ``n_focus`` strongest units (Hermitian pairs) in a fully sampled centre."""
    return max(128, 8 * n_focus)


def to_focus_rows(a: jax.Array, rows: int) -> jax.Array:
    """``[ny, ...]`` centred k-space rows -> ``[rows, ...]``, the DC row at ``rows // 2``: the
    centred band of ``rows`` rows when ``ny >= rows``, else zero rows added on both sides."""
    ny = a.shape[0]
    if rows <= ny:
        start = ny // 2 - rows // 2
        return a[start:start + rows]
    top = rows // 2 - ny // 2
    return jnp.pad(a, [(top, rows - ny - top)] + [(0, 0)] * (a.ndim - 1))


DEFAULT_SWEEPS = ((2.0, 1.0, False), (2.0, 0.5, False), (1.0, 0.125, True))
"""Focus sweeps ``(half_width, step, relative)``: an absolute ``half_width`` is in units of
``max_shift`` around the anchor, a relative one in px around the current value."""


def focus_search(
    kspace: jax.Array,
    mask: jax.Array,
    unit: jax.Array,
    offset: jax.Array,
    rank: jax.Array,
    *,
    n_focus: int,
    max_shift: float,
    criterion: str = "gradient_entropy",
    sweeps: tuple[tuple[float, float, bool], ...] = DEFAULT_SWEEPS,
    max_batch_pixels: int = 1 << 22,
) -> jax.Array:
    """Unit parameters ``p [ny]`` of the ``n_focus`` strongest units (others 0).

    Args:
      kspace: ``[ny, nx] complex64``, zero on lines not acquired.
      mask: ``[ny] bool``.
      unit, offset: ``[ny]`` unit label and fixed offset of each line.
      rank: ``[ny]`` unit energy rank (:func:`~kmri_jax.correct.units.unit_ranks`).
      n_focus: number of strongest units searched (static).
      max_shift: largest displacement, px; absolute sweeps span ``+-half_width*max_shift``
        relative to the anchor (two lines can differ by twice the amplitude).
      criterion: key of :data:`CRITERIA`.
      sweeps: see :data:`DEFAULT_SWEEPS`.
      max_batch_pixels: candidates are evaluated in batches of about this many pixels.

    Returns:
      ``[ny] float32`` unit parameters, mean zero over the focused lines.
    """
    ny, nx = kspace.shape
    f = CRITERIA[criterion]
    u = readout_frequencies(nx)
    focus_line = mask & (rank[unit] < n_focus)
    rows = focus_rows(n_focus)
    kf = to_focus_rows(jnp.where(focus_line[:, None], kspace, 0.0), rows)
    # A unit with no focused line in the band cannot move the score: it is not searched.
    searchable = jax.ops.segment_sum(to_focus_rows(focus_line.astype(jnp.int32), rows),
                                     to_focus_rows(unit, rows), num_segments=ny) > 0
    order = jnp.argsort(rank)                                   # units, strongest first
    batch = max(1, max_batch_pixels // (rows * nx))

    def score(d_lines: jax.Array) -> jax.Array:                # [ny] -> scalar
        return f(sim.kspace_to_image(kf * ramp(to_focus_rows(d_lines, rows), u)))

    p = jnp.zeros(ny, jnp.float32)
    for half, step, relative in sweeps:
        width = half if relative else half * max_shift
        grid = jnp.arange(-width, width + 1e-6, step, dtype=jnp.float32)

        def body(j: jax.Array, p: jax.Array, grid: jax.Array = grid, relative: bool = relative):
            g = order[j]
            cand = grid + (p[g] if relative else 0.0)
            members = unit == g
            base = p[unit] + offset

            def one(c: jax.Array) -> jax.Array:
                return score(jnp.where(members, c + offset, base))

            s = jax.lax.map(one, cand, batch_size=batch)
            best = cand[jnp.argmin(s)]
            return p.at[g].set(jnp.where(searchable[g], best, p[g]))

        p = jax.lax.fori_loop(1, n_focus, body, p)
        if not relative:
            # Block moves: all units weaker than the j-th strongest shift together, so that a
            # consistent group placed at a wrong (e.g. periodic-alias) offset can come back.
            def block(j: jax.Array, p: jax.Array, grid: jax.Array = grid):
                members = rank[unit] >= j
                base = p[unit] + offset

                def one(c: jax.Array) -> jax.Array:
                    return score(jnp.where(members, base + c, base))

                s = jax.lax.map(one, grid, batch_size=batch)
                c = grid[jnp.argmin(s)]
                return jnp.where((rank >= j) & (rank < n_focus), p + c, p)

            p = jax.lax.fori_loop(1, n_focus, block, p)
    d = p[unit] + offset
    centre = jnp.sum(jnp.where(focus_line, d, 0.0)) / jnp.maximum(jnp.sum(focus_line), 1)
    return jnp.where(rank < n_focus, p - centre, 0.0)
