"""Complex Gaussian draws for the k-space noise, and the two samplers behind them.

The noise is the simulator's largest random draw (one complex number per k-space entry:
``2 ny nx`` Gaussians a slice). How it is drawn is a static option, ``noise_rng``:

* ``"fused"`` (default): the Threefry-2x32 hash, the one ``jax.random`` uses, written here
  unrolled so that XLA fuses it with the rest of the noise into one elementwise loop; one
  hash of the entry's index gives two 32-bit words, i.e. two uniforms, and the Box-Muller
  transform turns them into one circular complex normal (Rayleigh radius, uniform phase).
  On XLA:CPU, ``jax.random``'s own Threefry runs as a rolled loop over whole arrays and draws
  one hash per 32-bit word; this is ~2.5x faster there (docs/profile.md).
* ``"jax"``: ``jax.random.normal`` of the real and the imaginary parts, the streams of
  kmri_jax before the switch (same statistics, different numbers for the same key).

Both give ``E z = 0``, ``E |z|^2 = 1``, ``E z^2 = 0`` (independent real and imaginary parts of
variance 1/2). The fused uniforms have 24 bits (float32) or 32 bits (float64), which bounds
``|z|`` by ``sqrt(24 ln 2) = 4.08`` (float32): a real part beyond 5.8 standard deviations, a
probability below 1e-8, is never drawn.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim.phasor import cis_turns
NOISE_RNGS = ("fused", "jax")

# Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
# SC 2011): the rotation constants of its two groups of four rounds and the key-schedule parity.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32(key: tuple[jax.Array, jax.Array], x0: jax.Array,
                 x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32-20 of the counter pairs ``(x0, x1)`` under ``key`` (unrolled, fusable).

    Args:
      key: two uint32 scalars.
      x0, x1: uint32 arrays of one shape, the counter words.

    Returns:
      Two uint32 arrays of that shape; equal to ``jax.random``'s Threefry primitive.
    """
    k0, k1 = key
    schedule = (k0, k1, k0 ^ k1 ^ _KEY_PARITY)
    x0, x1 = x0 + k0, x1 + k1
    for block in range(5):
        for bits in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, bits) ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two uint32 words derived from any JAX key (typed or raw, any implementation)."""
    words = jax.random.bits(key, (2,), jnp.uint32)
    return words[0], words[1]


def _open_uniform(bits: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """uint32 -> uniform in the open interval (0, 1), on a grid of 2^-24 (float32) or 2^-32."""
    if jnp.dtype(dtype) == jnp.dtype(jnp.float64):
        return (bits.astype(dtype) + 0.5) * (2.0 ** -32)
    return ((bits >> np.uint32(8)).astype(dtype) + 0.5) * np.float32(2.0 ** -24)


def complex_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.complex64, *,
                   noise_rng: str = "fused") -> jax.Array:
    """Circular complex standard normal draws, ``E |z|^2 = 1``.

    Args:
      key: PRNG key.
      shape: output shape (static), fewer than 2^32 entries.
      dtype: complex64 or complex128.
      noise_rng: ``"fused"`` or ``"jax"`` (module docstring).

    Returns:
      ``shape`` array of ``dtype``.
    """
    if noise_rng not in NOISE_RNGS:
        raise ValueError(f"noise_rng must be one of {NOISE_RNGS}; got {noise_rng!r}.")
    dtype = jnp.dtype(dtype)
    rdtype = jnp.finfo(dtype).dtype
    if noise_rng == "jax":
        z_re, z_im = jax.random.normal(key, (2, *shape), rdtype)
        return jax.lax.complex(z_re, z_im) / jnp.sqrt(jnp.asarray(2.0, rdtype))
    size = math.prod(shape)
    if size >= 2 ** 32:
        raise ValueError(f"complex_normal draws fewer than 2^32 values; got shape {shape}.")
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    w0, w1 = threefry2x32(_key_words(key), index, jnp.zeros_like(index))
    radius = jnp.sqrt(-jnp.log(_open_uniform(w0, rdtype)))
    return radius * cis_turns(_open_uniform(w1, rdtype))
