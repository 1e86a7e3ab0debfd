"""Rigid translation of each line's object, as per-line phase ramps in k-space: along the
readout (the seed's breathing motion) and along the phase-encode axis."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kmri_jax.sim.kspace import _complex_dtype
from kmri_jax.sim.phasor import cis_turns


def readout_frequencies(nx: int, dtype=jnp.float32) -> jax.Array:
    """Centred readout frequencies ``u = fftshift(fftfreq(nx))`` in cycles/pixel, ``[nx]``."""
    return jnp.fft.fftshift(jnp.fft.fftfreq(nx)).astype(dtype)


def apply_motion(kspace: jax.Array, displacement: jax.Array) -> jax.Array:
    """Shift each phase-encode line by its own displacement along the readout.

    ``K_m[ky, kx] = K[ky, kx] * exp(-2*pi*i * d[ky] * u[kx])``, ``u = fftshift(fftfreq(nx))``.
    A constant integer ``d`` moves the reconstructed image by ``d`` pixels along the columns
    (``np.roll(image, d, axis=-1)``).

    Args:
      kspace: ``[..., ny, nx]`` complex64 centred k-space (complex128 stays complex128).
      displacement: ``[..., ny]`` real, pixels per line (broadcast against ``kspace``).

    Returns:
      ``[..., ny, nx]`` k-space of the precision of ``kspace``.
    """
    kspace = jnp.asarray(kspace)
    if kspace.ndim < 2:
        raise ValueError(f"kspace must be [..., ny, nx]; got shape {tuple(kspace.shape)}.")
    displacement = jnp.asarray(displacement)
    if displacement.ndim < 1 or displacement.shape[-1] != kspace.shape[-2]:
        raise ValueError(
            f"displacement must be [..., ny] with ny = {kspace.shape[-2]} (one value per "
            f"phase-encode line); got shape {tuple(displacement.shape)}."
        )
    cdtype = _complex_dtype(kspace.dtype)
    rdtype = jnp.finfo(cdtype).dtype
    u = readout_frequencies(kspace.shape[-1], rdtype)
    ramp = cis_turns(-displacement.astype(rdtype)[..., :, None] * u)
    return kspace.astype(cdtype) * ramp


def phase_frequencies(ny: int, dtype=jnp.float32) -> jax.Array:
    """Centred phase-encode frequencies ``v = fftshift(fftfreq(ny))`` in cycles/pixel, ``[ny]``."""
    return jnp.fft.fftshift(jnp.fft.fftfreq(ny)).astype(dtype)


def apply_phase_encode_motion(kspace: jax.Array, dy: jax.Array) -> jax.Array:
    """Translate each line's object by ``dy[ky]`` rows: ``K[ky, :] * exp(-2 pi i dy[ky] v[ky])``.

    A constant integer ``dy`` is ``np.roll(image, dy, axis=0)``. ``kspace [..., ny, nx]``,
    ``dy [..., ny]`` px.
    """
    cdtype = _complex_dtype(kspace.dtype)
    rdtype = jnp.finfo(cdtype).dtype
    v = phase_frequencies(kspace.shape[-2], rdtype)
    phase = (-2.0 * math.pi) * jnp.asarray(dy, rdtype) * v
    return kspace.astype(cdtype) * jax.lax.complex(jnp.cos(phase), jnp.sin(phase))[..., None]
