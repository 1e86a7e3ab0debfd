"""Receive coils: analytic sensitivity maps, coil combination, and correlated coil noise.

Coil ``c`` sees the object weighted by its sensitivity, ``x_c = S_c * x``; the coils do not
move with the patient, so the motion and the off-resonance act on ``x`` first
(:func:`kmri_jax.sim.corrupt`). The maps are normalised so that ``sum_c |S_c|^2 = 1``
everywhere (as ESPIRiT maps are where the object is); then the adjoint-SENSE combination
``sum_c conj(S_c) x_c`` returns ``x`` and the root-sum-of-squares returns ``|x|``
(Roemer et al., "The NMR phased array", Magn Reson Med 16:192-225, 1990; Pruessmann et al.,
"SENSE: sensitivity encoding for fast MRI", Magn Reson Med 42:952-962, 1999).

SNR with coils is defined on the coil-combined image: ``sigma`` is chosen so that, for
identity noise covariance,
``RMS(combined zero-filled noiseless image) / RMS(combined noise image) = 10^(SNR/20)``,
the RMS over all pixels, the zero-filled image being ``ifft2c`` of the acquired lines. For one
coil with ``|S| = 1`` this is the seed's definition exactly (Parseval). Coil ``c`` then gets
noise ``sigma * (L z)_c`` with ``L L^H = noise_covariance`` and ``z`` standard complex
Gaussian (``E|z|^2 = 1``): a covariance with unit diagonal keeps each coil's noise level;
correlations change the combined image's noise (to ``sigma^2 * S^H Psi S`` per pixel).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim.kspace import _complex_dtype, image_to_kspace, kspace_to_image
from kmri_jax.sim.rng import complex_normal


def coil_maps(
    shape: tuple[int, int],
    *,
    n_coils: int,
    distance: float = 1.3,
    width: float = 0.6,
    phase_twist: float = 1.0,
    dtype=np.complex64,
) -> np.ndarray:
    """Sensitivities of ``n_coils`` loops evenly spaced on an ellipse around the image.

    Coordinates are normalised to the half-extents (the image spans ``[-1, 1]^2``). Coil ``c``
    sits at angle ``2 pi c / C`` on the ellipse of radius ``distance``; its raw sensitivity is
    ``exp(i (2 pi c / C + phase_twist * t_c(p))) / (1 + |p - q_c|^2 / width^2)``, ``t_c`` the
    position along the coil's tangent (a smooth receive phase), then every pixel is divided
    by ``sqrt(sum_c |.|^2)``. Deterministic; a constant for a compiled step.

    Args:
      shape: ``(ny, nx)``.
      n_coils: ``C >= 1``.
      distance: coil ring radius in half-extents (> 1 puts the coils outside the image).
      width: fall-off length of each coil's magnitude, in half-extents (> 0).
      phase_twist: radians of receive phase per half-extent along each coil's tangent.

    Returns:
      ``[C, ny, nx]`` complex maps with ``sum_c |S_c|^2 = 1`` at every pixel.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (ny, nx); got {shape!r}.")
    if int(n_coils) != n_coils or n_coils < 1:
        raise ValueError(f"n_coils must be a positive int; got {n_coils!r}.")
    if not (width > 0 and distance > 0 and np.isfinite(phase_twist)):
        raise ValueError(f"distance and width must be > 0 and phase_twist finite; got "
                         f"{distance!r}, {width!r}, {phase_twist!r}.")
    ny, nx = shape
    y = (np.arange(ny) - (ny - 1) / 2.0) / max(ny / 2.0, 1.0)
    x = (np.arange(nx) - (nx - 1) / 2.0) / max(nx / 2.0, 1.0)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    angles = 2.0 * math.pi * np.arange(int(n_coils)) / int(n_coils)
    raw = []
    for a in angles:
        qy, qx = distance * math.sin(a), distance * math.cos(a)
        tangent = -math.sin(a) * xx + math.cos(a) * yy
        magnitude = 1.0 / (1.0 + ((yy - qy) ** 2 + (xx - qx) ** 2) / width**2)
        raw.append(magnitude * np.exp(1j * (a + phase_twist * tangent)))
    raw = np.stack(raw)
    return (raw / np.sqrt(np.sum(np.abs(raw) ** 2, axis=0))).astype(dtype)


def coil_combine(kspace: jax.Array, *, maps: jax.Array | None = None) -> jax.Array:
    """One image from coil k-space.

    Args:
      kspace: ``[..., C, ny, nx]`` complex centred coil k-space.
      maps: optional ``[C, ny, nx]`` sensitivities (``sum_c |S_c|^2 = 1``).

    Returns:
      without maps the root-sum-of-squares magnitude ``sqrt(sum_c |x_c|^2)``, ``[..., ny, nx]``
      real; with maps the complex adjoint-SENSE image ``sum_c conj(S_c) x_c``, ``[..., ny, nx]``.
    """
    kspace = jnp.asarray(kspace)
    if kspace.ndim < 3:
        raise ValueError(f"coil k-space must be [..., C, ny, nx]; got shape "
                         f"{tuple(kspace.shape)}.")
    images = kspace_to_image(kspace)
    if maps is None:
        return jnp.sqrt(jnp.sum(jnp.real(images) ** 2 + jnp.imag(images) ** 2, axis=-3))
    maps = jnp.asarray(maps, images.dtype)
    if maps.shape != images.shape[-3:]:
        raise ValueError(f"maps must be [C, ny, nx] = {tuple(images.shape[-3:])} like the coil "
                         f"k-space; got {tuple(maps.shape)}.")
    return jnp.sum(jnp.conj(maps) * images, axis=-3)


def combined_kspace(kspace: jax.Array, maps: jax.Array) -> jax.Array:
    """k-space of the adjoint-SENSE image: ``image_to_kspace(coil_combine(K, maps=S))``,
    ``[..., C, ny, nx] -> [..., ny, nx]`` (a single-coil view of coil data)."""
    return image_to_kspace(coil_combine(kspace, maps=maps))


def combined_view(corrupted, maps: jax.Array):
    """A coil :class:`~kmri_jax.sim.Corrupted` (``kspace``/``clean`` ``[..., C, ny, nx]``) as
    its single-coil view: ``kspace`` and ``clean`` the :func:`combined_kspace` with ``maps``
    (``[..., ny, nx]``), the corrupted coil k-space kept as ``coil_kspace``."""
    return corrupted._replace(kspace=combined_kspace(corrupted.kspace, maps),
                              clean=combined_kspace(corrupted.clean, maps),
                              coil_kspace=corrupted.kspace)


def coil_noise_sigma(kspace: jax.Array, mask: jax.Array, maps: jax.Array, *,
                     snr_db: jax.typing.ArrayLike) -> jax.Array:
    """``sigma`` of the coil noise for a target SNR of the combined image (module docstring).

    Args:
      kspace: ``[C, ny, nx]`` noiseless coil k-space, zero on lines not acquired.
      mask: ``[ny]`` bool acquired lines.
      maps: ``[C, ny, nx]`` sensitivities.
      snr_db: target SNR in dB (may be traced).
    """
    combined = coil_combine(kspace, maps=maps)
    rdtype = jnp.finfo(combined.dtype).dtype
    ny, nx = kspace.shape[-2:]
    n_acquired = jnp.maximum(jnp.sum(mask.astype(rdtype)), 1.0) * nx
    power = jnp.mean(jnp.real(combined) ** 2 + jnp.imag(combined) ** 2)
    # mean |noise image|^2 = sigma^2 * n_acquired / (ny nx)^2 for unit covariance
    rms = jnp.sqrt(jnp.maximum(power, jnp.finfo(rdtype).tiny)) * (ny * nx) / jnp.sqrt(n_acquired)
    return rms / 10.0 ** (jnp.asarray(snr_db, rdtype) / 20.0)


def add_coil_noise(key: jax.Array, kspace: jax.Array, mask: jax.Array, maps: jax.Array, *,
                   snr_db: jax.typing.ArrayLike,
                   noise_covariance: jax.Array | None = None,
                   noise_rng: str = "fused") -> jax.Array:
    """Correlated complex Gaussian noise on the acquired lines of coil k-space.

    Args:
      key: PRNG key.
      kspace: ``[C, ny, nx]`` complex noiseless coil k-space (zero on lines not acquired).
      mask: ``[ny]`` bool acquired lines.
      maps: ``[C, ny, nx]`` sensitivities (for the SNR of the combined image).
      snr_db: target SNR of the combined image, dB.
      noise_covariance: ``[C, C]`` Hermitian positive definite; None = identity.
      noise_rng: how the Gaussians are drawn, ``"fused"`` or ``"jax"`` (:mod:`.rng`).

    Returns:
      ``[C, ny, nx]`` noisy k-space; lines not acquired pass through unchanged.
    """
    cdtype = _complex_dtype(kspace.dtype)
    kspace = kspace.astype(cdtype)
    sigma = coil_noise_sigma(kspace, mask, maps, snr_db=snr_db)
    z = complex_normal(key, kspace.shape, cdtype, noise_rng=noise_rng)
    if noise_covariance is not None:
        chol = jnp.linalg.cholesky(jnp.asarray(noise_covariance, cdtype))
        z = jnp.einsum("cd,dyx->cyx", chol, z)
    return jnp.where(mask[:, None], kspace + sigma * z, kspace)
