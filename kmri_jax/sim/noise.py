"""Complex Gaussian noise at a target SNR on the acquired lines."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kmri_jax.sim import validation
from kmri_jax.sim.kspace import _complex_dtype
from kmri_jax.sim.rng import complex_normal


def noise_sigma(kspace: jax.Array, mask: jax.Array, *, snr_db: jax.typing.ArrayLike) -> jax.Array:
    """``sigma = RMS(|K| over acquired entries) / 10^(SNR/20)`` (scalar, real).

    Args:
      kspace: ``[ny, nx]`` complex k-space.
      mask: ``[ny]`` bool line mask (at least one line acquired).
      snr_db: target SNR in dB (scalar, may be traced).
    """
    rdtype = jnp.finfo(_complex_dtype(kspace.dtype)).dtype
    line = mask.astype(rdtype)[:, None]
    power = jnp.sum(line * (jnp.real(kspace) ** 2 + jnp.imag(kspace) ** 2))
    count = jnp.maximum(jnp.sum(line) * kspace.shape[-1], 1.0)
    snr = jnp.asarray(snr_db, rdtype)
    # sqrt with a tiny floor keeps the gradient finite for an all-zero k-space.
    rms = jnp.sqrt(jnp.maximum(power / count, jnp.finfo(rdtype).tiny))
    return rms / 10.0 ** (snr / 20.0)


def add_noise(
    key: jax.Array, kspace: jax.Array, mask: jax.Array, *, snr_db: jax.typing.ArrayLike,
    noise_rng: str = "fused",
) -> jax.Array:
    """Add ``sigma * (N + iN) / sqrt(2)`` on acquired lines; other lines pass through unchanged.

    ``sigma`` is :func:`noise_sigma` (RMS over acquired entries only), so the complex noise
    has total standard deviation ``sigma`` (``sigma/sqrt(2)`` per real/imaginary part).
    Lines with ``mask == False`` are returned bit-for-bit as given; in :func:`corrupt` they
    are already zero (k-space is masked before the noise).

    Args:
      key: PRNG key.
      kspace: ``[ny, nx]`` complex64 (complex128 stays complex128).
      mask: ``[ny]`` bool line mask.
      snr_db: target SNR in dB (scalar, may be traced; concrete non-finite raises).
      noise_rng: how the Gaussians are drawn, ``"fused"`` or ``"jax"`` (:mod:`.rng`).

    Returns:
      ``[ny, nx]`` noisy k-space, same dtype as ``kspace``.
    """
    validation.check_snr(snr_db)
    kspace = jnp.asarray(kspace)
    kspace = kspace.astype(_complex_dtype(kspace.dtype))
    mask = jnp.asarray(mask)
    if kspace.ndim != 2 or mask.shape != kspace.shape[:1]:
        raise ValueError(
            f"add_noise expects kspace [ny, nx] and mask [ny]; got {tuple(kspace.shape)} and "
            f"{tuple(mask.shape)} (use jax.vmap for a batch)."
        )
    mask = mask.astype(bool)
    sigma = noise_sigma(kspace, mask, snr_db=snr_db)
    noise = sigma * complex_normal(key, kspace.shape, kspace.dtype, noise_rng=noise_rng)
    return jnp.where(mask[:, None], kspace + noise, kspace)
