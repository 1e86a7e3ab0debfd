"""Smooth random fields of the phantom: band-limited tissue texture and a receive bias field."""

from __future__ import annotations

import numpy as np


def band_limited_field(rng: np.random.Generator, shape: tuple[int, ...], *,
                       sigma_px: tuple[float, ...]) -> np.ndarray:
    """A stationary Gaussian random field with a Gaussian autocorrelation, zero mean, unit std.

    White noise filtered by ``exp(-|k sigma|^2 / 2)`` in the Fourier domain (periodic edges), so
    the autocorrelation is ``exp(-sum_i (r_i / (2 sigma_i))^2)``: correlated over about
    ``2 sigma`` pixels along each axis, band-limited above ``1 / (2 pi sigma)`` cycles/px.

    Args:
      rng: numpy generator (the field is deterministic in its state).
      shape: field shape.
      sigma_px: filter width per axis, pixels (0 = white along that axis).

    Returns:
      ``shape`` float32.
    """
    if len(sigma_px) != len(shape):
        raise ValueError(f"sigma_px needs one width per axis of {shape}; got {sigma_px}.")
    noise = rng.standard_normal(shape)
    spectrum = np.fft.rfftn(noise)
    for axis, (n, sigma) in enumerate(zip(shape, sigma_px)):
        k = (np.fft.rfftfreq(n) if axis == len(shape) - 1 else np.fft.fftfreq(n)) * 2 * np.pi
        view = [1] * len(shape)
        view[axis] = k.size
        spectrum *= np.exp(-0.5 * (k * sigma) ** 2).reshape(view)
    field = np.fft.irfftn(spectrum, s=shape, axes=tuple(range(len(shape))))
    field -= field.mean()
    return (field / max(float(field.std()), 1e-12)).astype(np.float32)


def bias_field(rng: np.random.Generator, y_mm: np.ndarray, z_mm: np.ndarray, x_mm: np.ndarray,
               *, posterior_mm: float, depth_mm: float, strength: float) -> np.ndarray:
    """A smooth multiplicative receive bias ``[X, Y, Z]``: a posterior spine-array falloff.

    ``b = exp(-(y - posterior) / depth) * (1 + strength * smooth)``, ``smooth`` a sum of
    random low-order cosines along each axis, normalised to mean 1 over the volume. The
    falloff follows the patient lying on a posterior receive array (signal strongest at the
    back); its depth and the strength are per-subject draws.
    """
    def cosines(coord: np.ndarray) -> np.ndarray:
        span = max(float(coord.max() - coord.min()), 1e-6)
        t = (coord - coord.min()) / span
        return sum(rng.uniform(-1, 1) * np.cos(np.pi * (k * t + rng.uniform(0, 1)))
                   for k in (1, 2)) / 2

    y, z, x = y_mm[None, :, None], z_mm[None, None, :], x_mm[:, None, None]
    falloff = np.exp(-np.clip(y - posterior_mm, 0, None) / depth_mm)
    smooth = 1 + strength * (cosines(y) + cosines(z) + 0.5 * cosines(x)) / 2.5
    b = falloff * np.clip(smooth, 0.5, None)
    return (b / b.mean()).astype(np.float32)
