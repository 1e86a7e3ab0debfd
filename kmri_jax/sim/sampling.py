"""Cartesian undersampling masks over phase-encode lines."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kmri_jax.sim import validation


def center_lines(n_lines: int, center_fraction: float = 0.08) -> tuple[int, int]:
    """First index and count of the always-acquired centre block (static ints).

    ``n_c = max(1, floor(n_lines * center_fraction))`` lines starting at ``n_lines//2 - n_c//2``.
    """
    n_c = max(1, math.floor(n_lines * center_fraction))
    n_c = min(n_c, n_lines)
    return n_lines // 2 - n_c // 2, n_c


def cartesian_mask(
    key: jax.Array,
    n_lines: int,
    *,
    acceleration: jax.typing.ArrayLike,
    center_fraction: float = 0.08,
) -> jax.Array:
    """Line mask: a fully sampled centre block plus ``floor(n_outer / R)`` random outer lines.

    The outer lines are drawn uniformly without replacement by ranking i.i.d. uniform scores
    and keeping the lowest ``floor(n_outer / R)`` ranks, so ``R`` may be a traced per-sample
    value (the count is data-dependent, the shape is not). ``R`` is clipped to ``>= 1`` inside;
    concrete values ``< 1`` raise ``ValueError``.

    Args:
      key: PRNG key.
      n_lines: number of phase-encode lines ``ny`` (static int).
      acceleration: ``R >= 1`` (scalar, may be traced).
      center_fraction: fraction of lines in the centre block (static float).

    Returns:
      ``[n_lines]`` bool, True where a line is acquired.
    """
    if int(n_lines) != n_lines or n_lines < 1:
        raise ValueError(f"n_lines must be a positive int; got {n_lines!r}.")
    if not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"center_fraction must be in [0, 1]; got {center_fraction!r}.")
    validation.check_acceleration(acceleration)
    n_lines = int(n_lines)
    start, n_c = center_lines(n_lines, center_fraction)
    n_outer = n_lines - n_c
    idx = jnp.arange(n_lines)
    center = (idx >= start) & (idx < start + n_c)

    r = jnp.asarray(acceleration)
    if r.ndim:
        raise ValueError("acceleration must be a scalar; use jax.vmap for a batch.")
    r = jnp.maximum(r.astype(jnp.result_type(r, jnp.float32)), 1.0)
    n_keep = jnp.floor(n_outer / r).astype(jnp.int32)

    # Centre lines get score 2 (> any uniform draw), so they rank after every outer line.
    scores = jnp.where(center, 2.0, jax.random.uniform(key, (n_lines,)))
    ranks = jnp.argsort(jnp.argsort(scores))
    return center | (ranks < n_keep)
