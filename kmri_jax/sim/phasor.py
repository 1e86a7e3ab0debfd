"""``exp(2 pi i t)`` of a phase in turns, cheaply: the simulator's phase ramps and noise angles.

Every k-space entry of a corruption gets a phasor (the motion's ramp ``exp(-2 pi i d u)``)
and, for the noise, a uniform angle. XLA:CPU's general ``sin``/``cos`` (a range reduction for
any argument) were the largest cost of both (docs/profile.md). A phase in turns reduces
exactly: ``t - round(t)`` lies in ``[-1/2, 1/2]`` and a quarter-turn index leaves
``|r| <= 1/8`` turn, where Taylor polynomials of degree 9 (sine) and 10 (cosine) of
``x = 2 pi r`` are within 2e-9 of the functions: float32 results are correctly rounded to a
few ulp. float64 phases use ``jnp.cos``/``jnp.sin`` after the same exact reduction.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def cis_turns(turns: jax.Array) -> jax.Array:
    """``exp(2 pi i turns)`` elementwise.

    Args:
      turns: real array, the phase in turns (cycles), float32 or float64.

    Returns:
      complex64 (complex128 for float64) array of the same shape, unit modulus.
    """
    turns = jnp.asarray(turns)
    if not jnp.issubdtype(turns.dtype, jnp.floating):
        turns = turns.astype(jnp.float32)
    if turns.dtype == jnp.float64:
        angle = (2.0 * math.pi) * (turns - jnp.round(turns))
        return jax.lax.complex(jnp.cos(angle), jnp.sin(angle))
    turns = turns.astype(jnp.float32)
    t = turns - jnp.round(turns)  # [-1/2, 1/2], exact
    quarter = jnp.round(4.0 * t)  # -2 .. 2
    x = (2.0 * math.pi) * (t - 0.25 * quarter)  # |x| <= pi/4
    x2 = x * x
    sin = x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 / 362880))))
    cos = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (
        1.0 / 40320 - x2 / 3628800))))
    q = quarter.astype(jnp.int32) & 3  # rotate (cos, sin) by q quarter turns
    re = jnp.where(q == 0, cos, jnp.where(q == 1, -sin, jnp.where(q == 2, -cos, sin)))
    im = jnp.where(q == 0, sin, jnp.where(q == 1, cos, jnp.where(q == 2, -sin, -cos)))
    return jax.lax.complex(re, im)
