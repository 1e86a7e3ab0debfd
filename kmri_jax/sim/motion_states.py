"""Binning phase-encode lines into a static number of motion states.

Resampling the image for every line's own rotation or non-rigid displacement would cost one
warp and one 2-D FFT per line. Instead the ``ny`` lines are grouped into ``K`` (static) motion
states, the image is warped once per state with the state's mean motion, and each line is
taken from its state's k-space.

Grouping: optimal 1-D k-means by dynamic programming (Wang & Song, "Ckmeans.1d.dp: optimal
k-means clustering in one dimension by dynamic programming", The R Journal 3(2), 2011) on a
scalar motion coordinate: the sorted coordinates are cut into ``K`` contiguous groups that
minimise the within-group sum of squares. So a motion that takes at most ``K`` distinct values
is reproduced exactly, and a continuous one (a breathing trace) gets states where its values
are dense. Cost ``O(K ny^2)`` on ``[ny, ny]`` arrays: ~6 M operations at ``ny = 424, K = 32``,
small beside ``K`` 2-D FFTs. The grouping is piecewise constant, so it carries no gradient;
the states' means do.

The coordinate of several components (e.g. readout and phase-encode translation, rotation in
pixels at the image's edge) is their projection on the principal axis of the lines' motion:
exact when, as in :func:`kmri_jax.sim.corrupt`, one breathing trace drives every component.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def motion_coordinate(components: list[jax.Array]) -> jax.Array:
    """One scalar per line from ``m`` motion components (each ``[n]``, in comparable units):
    the component itself when ``m = 1``, else the projection on the principal axis."""
    if len(components) == 1:
        return jax.lax.stop_gradient(components[0])
    m = jax.lax.stop_gradient(jnp.stack(components, axis=-1))  # [n, m]
    centred = m - jnp.mean(m, axis=0)
    _, vectors = jnp.linalg.eigh(centred.T @ centred)
    return centred @ vectors[:, -1]


def assign_states(coordinate: jax.Array, n_states: int) -> jax.Array:
    """Optimal 1-D k-means grouping of ``coordinate [n]`` into ``n_states`` contiguous groups.

    Returns:
      ``[n]`` int32 state of each line, in ``0..n_states-1`` (increasing with the coordinate).
    """
    n = coordinate.shape[0]
    k_states = int(n_states)
    if not 1 <= k_states <= n:
        raise ValueError(f"motion_states must be an int in 1..{n} (the number of lines); "
                         f"got {n_states!r}.")
    x = jax.lax.stop_gradient(coordinate)
    order = jnp.argsort(x)
    xs = x[order]
    xs = xs - jnp.mean(xs)
    zero = jnp.zeros((1,), xs.dtype)
    s1 = jnp.concatenate([zero, jnp.cumsum(xs)])
    s2 = jnp.concatenate([zero, jnp.cumsum(xs * xs)])
    i = jnp.arange(n)[:, None]  # segment start
    j = jnp.arange(n)[None, :]  # segment end (inclusive)
    count = jnp.maximum(j - i + 1, 1).astype(xs.dtype)
    total = s1[j + 1] - s1[i]
    cost = jnp.maximum((s2[j + 1] - s2[i]) - total * total / count, 0.0)
    inf = jnp.asarray(jnp.inf, xs.dtype)
    cost = jnp.where(j >= i, cost, inf)  # [start, end]
    best = cost[0]  # one group covering lines 0..end

    def add_group(prev, k):
        # The last group starts at i >= k; the first k groups cover 0..i-1.
        previous = jnp.concatenate([jnp.full((1,), inf, xs.dtype), prev[:-1]])[:, None]
        candidate = jnp.where(i >= k, previous + cost, inf)
        start = jnp.argmin(candidate, axis=0)
        return jnp.min(candidate, axis=0), start

    if k_states > 1:
        _, starts = jax.lax.scan(add_group, best, jnp.arange(1, k_states))  # [K-1, n]

        def backtrack(end, starts_k):
            start = starts_k[end]
            return start - 1, start

        _, group_starts = jax.lax.scan(backtrack, jnp.asarray(n - 1), starts, reverse=True)
        positions = jnp.arange(n)
        sorted_state = jnp.sum(positions[:, None] >= group_starts[None, :], axis=1)
    else:
        sorted_state = jnp.zeros(n, jnp.int32)
    return jnp.zeros(n, jnp.int32).at[order].set(sorted_state.astype(jnp.int32))


def state_means(values: jax.Array, states: jax.Array, n_states: int) -> jax.Array:
    """Mean of ``values [n]`` over each state's lines, ``[n_states]`` (differentiable)."""
    sums = jax.ops.segment_sum(values, states, num_segments=int(n_states))
    counts = jax.ops.segment_sum(jnp.ones_like(values), states, num_segments=int(n_states))
    return sums / jnp.maximum(counts, 1)
