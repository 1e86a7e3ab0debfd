"""The displacement an ``estimate_unet`` trains with: the true one, optionally spoiled as an
estimate is.

At inference ``estimate_unet`` undoes :func:`kmri_jax.correct.estimate_motion`'s displacement
before its image network. Running that search inside every training step would cost hundreds of
ms per slice on a CPU, so the training step undoes the true displacement (known in
simulation) instead, with the estimate's constant. It can be spoiled the two ways an
estimate goes wrong (docs/correction.md, "Where the remaining error is"): a few lines left
where the motion put them (a strong line a structure period off, a weak line the search
could not place), and a small error on every other line, so that the network also learns to
remove what an imperfect estimate leaves. At the quickstart's budget spoiling did not help
(docs/results.md), so it is off by default (``train.spoil_keep = train.spoil_jitter = 0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kmri_jax.correct import centre_displacement


def spoiled_displacement(key: jax.Array, displacement: jax.Array, mask: jax.Array, *,
                         keep: float, jitter: float) -> jax.Array:
    """The true displacement as an imperfect estimate of it: what to undo in training.

    Per sample, ``p ~ U(0, keep)`` and ``s ~ U(0, jitter)``; each acquired line is left
    uncorrected with probability ``p`` (its estimate 0, so the undo leaves its motion), and
    otherwise gets an error ``s * std(d) * N(0, 1)`` (``std`` over the sample's acquired
    lines). The result has :func:`kmri_jax.correct.centre_displacement`'s constant, as an
    estimate has.

    Args:
      key: a JAX PRNG key.
      displacement: ``[B, ny]`` true displacement, px.
      mask: ``[B, ny] bool`` acquired lines.
      keep: largest fraction of lines left uncorrected, in ``[0, 1]``.
      jitter: largest error of the other lines, in units of the displacement's spread.

    Returns:
      ``[B, ny] float32`` displacement to undo; 0 off the acquired lines.
    """
    d = jnp.asarray(displacement, jnp.float32)
    mask = jnp.asarray(mask).astype(bool)
    b = d.shape[0]
    k_p, k_s, k_keep, k_noise = jax.random.split(key, 4)
    p = jax.random.uniform(k_p, (b, 1), maxval=keep)
    s = jax.random.uniform(k_s, (b, 1), maxval=jitter)
    n = jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1)
    mean = jnp.sum(jnp.where(mask, d, 0.0), -1, keepdims=True) / n
    spread = jnp.sqrt(jnp.sum(jnp.where(mask, (d - mean) ** 2, 0.0), -1, keepdims=True) / n)
    left = jax.random.bernoulli(k_keep, p, d.shape)
    noisy = d + s * spread * jax.random.normal(k_noise, d.shape)
    return centre_displacement(jnp.where(left, 0.0, noisy), mask)
