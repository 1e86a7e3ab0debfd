"""Per-line readout motion: undo a known displacement, or estimate it from k-space alone.

The motion model is :func:`kmri_jax.sim.apply_motion`: line ``ky`` of k-space is the k-space
of the image shifted by ``d[ky]`` px along the readout (columns),
``K_m[ky, kx] = K[ky, kx] exp(-2 pi i d[ky] u[kx])``, ``u = fftshift(fftfreq(nx))``.

:func:`estimate_motion` is training-free and uses only the corrupted k-space and its line
mask. It assumes a real, non-negative image (as :func:`kmri_jax.sim.corrupt` simulates):

1. *Hermitian pairs.* For a real image a line and its conjugate partner ``-ky`` carry the
   same data up to the phase ramp of ``d[ky] - d[-ky]``, which a 1-D search reads off
   directly; reliably detected pairs become one unit with a fixed internal offset.
2. *Autofocus of the centre.* A Gauss-Seidel grid search of the gradient entropy of the image
   made of the strongest units only (the k-space centre), each unit tried at every shift on a
   grid spanning twice ``max_shift`` around the strongest line, plus block moves of all
   weaker units together (escapes periodic-alias placements of a consistent group).
3. *Joint estimation.* Alternating a TV-regularised real, non-negative reconstruction with an
   exact global 1-D search per unit of the data match (plus a Gaussian prior fitted to the
   centre lines), with occasional block moves of whole energy bands (see
   :mod:`kmri_jax.correct.joint`).
4. *Range guard.* The strongest units stay within the range the other lines span, widened
   by ``range_margin`` of it on each side: every line samples the same breathing trace.

A displacement is identifiable only up to a constant (a global shift changes no sharpness or
consistency measure); the estimate is returned with the robust mid-range of the acquired
lines at zero (:func:`centre_displacement`), and 0 on lines not acquired.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from kmri_jax import sim
from kmri_jax.correct import focus as _focus
from kmri_jax.correct import joint as _joint
from kmri_jax.correct import units as _units


def undo_motion(kspace: jax.Array, displacement: jax.Array,
                displacement_pe: jax.Array | None = None) -> jax.Array:
    """Exact inverse of :func:`kmri_jax.sim.apply_motion`: multiply by the conjugate ramp.

    ``K[ky, kx] = K_m[ky, kx] * exp(+2 pi i d[ky] u[kx])``, ``u = fftshift(fftfreq(nx))``;
    with ``displacement_pe`` also the phase-encode translation of
    :func:`kmri_jax.sim.apply_rigid_motion`, ``* exp(+2 pi i dy[ky] v[ky])``.

    Args:
      kspace: ``[..., ny, nx] complex64`` centred k-space (complex128 stays complex128).
      displacement: ``[..., ny]`` px per line (broadcast against ``kspace``).
      displacement_pe: optional ``[..., ny]`` phase-encode (row) displacement, px.

    Returns:
      ``[..., ny, nx]`` k-space of the precision of ``kspace``.
    """
    displacement = jnp.asarray(displacement)
    undone = sim.apply_motion(kspace, -displacement)
    if displacement_pe is None:
        return undone
    return sim.motion.apply_phase_encode_motion(undone, -jnp.asarray(displacement_pe))


def oracle(corrupted: sim.Corrupted) -> jax.Array:
    """The true motion undone: ``undo_motion(corrupted.kspace, corrupted.displacement,
    corrupted.displacement_pe)`` (both translations exactly; a rotation or a weight map of
    :func:`kmri_jax.sim.apply_rigid_motion` is not undone: no per-line operation can).

    Args:
      corrupted: a :class:`kmri_jax.sim.Corrupted` (``kspace [..., ny, nx]``,
        ``displacement [..., ny]``).

    Returns:
      ``[..., ny, nx] complex64`` zero-filled k-space with the true motion removed.
    """
    return undo_motion(corrupted.kspace, corrupted.displacement, corrupted.displacement_pe)


CENTRE_QUANTILE = 0.1
"""The quantile pair ``(q, 1 - q)`` whose mid-point :func:`centre_displacement` puts at zero."""


def centre_displacement(displacement: jax.Array, mask: jax.Array, *,
                        quantile: float = CENTRE_QUANTILE) -> jax.Array:
    """A displacement with the constant this package returns: the robust mid-range over the
    acquired lines at zero, and 0 on the lines not acquired.

    A per-line displacement is identifiable only up to a constant. Breathing oscillates about
    its rest level and its samples crowd at the turning points, where the mid-point of a low
    and a high quantile of the samples estimates the centre of the excursion more precisely
    than their mean (docs/correction.md, "The constant").

    Args:
      displacement: ``[..., ny]`` px.
      mask: ``[..., ny] bool`` acquired lines.
      quantile: ``q`` in ``[0, 0.5]``: the mid-point of the ``q`` and ``1 - q`` quantiles
        (numpy's linear interpolation) over the acquired lines becomes 0.

    Returns:
      ``[..., ny]`` of the dtype of ``displacement``; all zeros where no line is acquired.
    """
    d = jnp.asarray(displacement)
    mask = jnp.asarray(mask).astype(bool)
    if not 0.0 <= quantile <= 0.5:
        raise ValueError(f"quantile must be in [0, 0.5]; got {quantile!r}.")
    acquired = jnp.where(mask, d, jnp.nan)
    q = jnp.asarray([quantile, 1.0 - quantile], jnp.float32)
    lo, hi = jnp.nanquantile(acquired, q, axis=-1, keepdims=True)
    centre = jnp.where(jnp.any(mask, -1, keepdims=True), 0.5 * (lo + hi), 0.0)
    return jnp.where(mask, d - centre, 0.0).astype(d.dtype)


def default_n_focus(ny: int) -> int:
    """Default number of units in the autofocus stage: ``max(3, ceil(0.04 * ny))`` (about
    the units of an 8% fully sampled centre, Hermitian pairs counting once)."""
    return max(3, math.ceil(0.04 * ny))


def estimate_motion(
    kspace: jax.Array,
    mask: jax.Array,
    *,
    line_groups: jax.Array | None = None,
    max_shift: float = 10.0,
    hermitian: bool = True,
    n_focus: int | None = None,
    focus_criterion: str = "gradient_entropy",
    focus_sweeps: tuple[tuple[float, float, bool], ...] = _focus.DEFAULT_SWEEPS,
    n_outer: int = 160,
    n_inner: int = 15,
    tv_weight: tuple[float, float] = (0.3, 0.03),
    search_step: float = 0.25,
    prior: bool = True,
    group_moves: tuple[int, ...] = (5, 10),
    range_margin: float | None = 0.5,
) -> jax.Array:
    """Estimate the per-line readout displacement from corrupted k-space alone.

    Pure and deterministic; works under ``jit`` and ``vmap`` (one slice per call: ``vmap``
    for a batch). All options are static Python values (bind them with
    ``functools.partial`` before ``jax.jit``); ``line_groups`` may be traced.

    Args:
      kspace: ``[ny, nx] complex64`` corrupted centred k-space (``sim.Corrupted.kspace``);
        lines not acquired are ignored.
      mask: ``[ny] bool`` acquired phase-encode lines.
      line_groups: optional ``[ny]`` int labels in ``[0, ny)``; lines with the same label
        share one displacement (e.g. an echo train). Default: one displacement per line
        (then conjugate line pairs are coupled, see ``hermitian``).
      max_shift: largest displacement magnitude searched, px.
      hermitian: couple conjugate line pairs of a real image (ignored with ``line_groups``).
      n_focus: units searched by the autofocus stage; default :func:`default_n_focus`.
      focus_criterion: ``"gradient_entropy"`` (default) or ``"entropy"``.
      focus_sweeps: autofocus sweeps, see :data:`kmri_jax.correct.focus.DEFAULT_SWEEPS`.
      n_outer, n_inner: joint-stage outer iterations and TV iterations per outer one.
      tv_weight: ``(first, last)`` TV weight relative to the image's 99th-percentile
        magnitude, geometric schedule over the outer iterations.
      search_step: grid step of the joint per-unit search, px (Newton refines it).
      prior: Gaussian displacement prior fitted to the centre lines in the joint stage.
      group_moves: joint iterations before which energy bands may move as a block.
      range_margin: the ``n_focus`` strongest units are kept within the range of the other
        acquired lines' displacements widened by this fraction of it on each side; None: no
        guard.

    Returns:
      ``[ny] float32`` displacement, px: :func:`centre_displacement` (robust mid-range zero
      over the acquired lines), 0 elsewhere.
    """
    kspace = jnp.asarray(kspace)
    mask = jnp.asarray(mask)
    if kspace.ndim != 2:
        raise ValueError(
            f"kspace must be [ny, nx] (use jax.vmap for a batch); got shape {tuple(kspace.shape)}."
        )
    if mask.shape != kspace.shape[:1]:
        raise ValueError(f"mask must be [ny] = [{kspace.shape[0]}]; got {tuple(mask.shape)}.")
    if line_groups is not None and jnp.shape(line_groups) != kspace.shape[:1]:
        raise ValueError(
            f"line_groups must be [ny] = [{kspace.shape[0]}]; got {tuple(jnp.shape(line_groups))}."
        )
    if focus_criterion not in _focus.CRITERIA:
        raise ValueError(
            f"focus_criterion must be one of {tuple(_focus.CRITERIA)}; got {focus_criterion!r}."
        )
    if not max_shift > 0:
        raise ValueError(f"max_shift must be > 0; got {max_shift!r}.")
    if range_margin is not None and not range_margin >= 0:
        raise ValueError(f"range_margin must be >= 0 or None; got {range_margin!r}.")
    if n_focus is None:
        n_focus = default_n_focus(kspace.shape[0])
    return _estimate(
        kspace, mask, line_groups,
        max_shift=float(max_shift), hermitian=bool(hermitian), n_focus=int(n_focus),
        focus_criterion=focus_criterion, focus_sweeps=tuple(map(tuple, focus_sweeps)),
        n_outer=int(n_outer), n_inner=int(n_inner),
        tv_weight=tuple(float(v) for v in tv_weight), search_step=float(search_step),
        prior=bool(prior), group_moves=tuple(int(g) for g in group_moves),
        range_margin=None if range_margin is None else float(range_margin),
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "max_shift", "hermitian", "n_focus", "focus_criterion", "focus_sweeps", "n_outer",
        "n_inner", "tv_weight", "search_step", "prior", "group_moves", "range_margin",
    ),
)
def _estimate(
    kspace: jax.Array,
    mask: jax.Array,
    line_groups: jax.Array | None,
    *,
    max_shift: float,
    hermitian: bool,
    n_focus: int,
    focus_criterion: str,
    focus_sweeps: tuple[tuple[float, float, bool], ...],
    n_outer: int,
    n_inner: int,
    tv_weight: tuple[float, float],
    search_step: float,
    prior: bool,
    group_moves: tuple[int, ...],
    range_margin: float | None,
) -> jax.Array:
    """:func:`estimate_motion` on checked inputs (compiled once per shape and options)."""
    ny, nx = kspace.shape
    mask = mask.astype(bool)
    k = jnp.where(mask[:, None], kspace.astype(jnp.complex64), 0.0)
    # Scale: unitary FFT, zero-filled image magnitude ~1 at its 99th percentile.
    zf = jnp.abs(sim.kspace_to_image(k))
    k = k / (jnp.percentile(zf, 99.0) * math.sqrt(ny * nx) + 1e-30)
    sigma2 = _units.noise_variance(k, mask) + 1e-30

    if line_groups is None and hermitian:
        delta, paired = _units.hermitian_pairs(k, mask, max_shift=max_shift, sigma2=sigma2)
        unit, offset = _units.line_units(mask, paired=paired, delta=delta)
    else:
        unit, offset = _units.line_units(mask, line_groups=line_groups)
    rank = _units.unit_ranks(k, mask, unit)

    p = _focus.focus_search(
        k, mask, unit, offset, rank, n_focus=n_focus, max_shift=max_shift,
        criterion=focus_criterion, sweeps=focus_sweeps,
    )
    if n_outer > 0:
        p = _joint.joint_refine(
            k, mask, unit, offset, rank, p, sigma2, n_anchor=n_focus, max_shift=max_shift,
            n_outer=n_outer, n_inner=n_inner, tv_weight=tv_weight, step=search_step,
            prior=prior, group_moves=group_moves,
        )
    if range_margin is not None:
        p = _units.clip_strongest_to_range(p, mask, unit, offset, rank, n_strongest=n_focus,
                                           margin=range_margin)
    return centre_displacement(p[unit] + offset, mask).astype(jnp.float32)
