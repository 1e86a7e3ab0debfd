"""Resampling an image at arbitrary coordinates on the device: periodic cubic B-splines.

Interpolation: cubic B-spline with the exact periodic prefilter, i.e. what
``scipy.ndimage.map_coordinates(image, coords, order=3, mode="grid-wrap")`` computes. The
prefilter (spline coefficients ``c`` with ``c * [1, 4, 1] / 6 = image`` circularly along each
axis) is one FFT division per image; each output pixel then sums 4 x 4 coefficients with the
B-spline weights. Interpolating: integer coordinates return the image exactly, so an integer
translation is the circular shift ``np.roll`` (the same periodic field of view as the k-space
phase ramps). Linear in the image and smooth (C2) in the coordinates, so gradients flow to
both. Unser, "Splines: a perfect fit for signal and image processing", IEEE Signal Processing
Magazine 16(6), 1999.

Rotation convention: :func:`rotation_source` gives, for each output pixel ``o``, the source
``R (o - c) + c`` with ``R = [[cos, sin], [-sin, cos]]`` on (row, column) and ``c`` the array
centre ``((ny-1)/2, (nx-1)/2)``, which is ``scipy.ndimage.rotate(image, angle, axes=(1, 0),
reshape=False)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _axis_prefilter(n: int, dtype) -> jax.Array:
    """``1 / DFT([4, 1, 0, ..., 0, 1] / 6)`` along one axis of length ``n``, ``[n]``."""
    w = 2.0 * math.pi * jnp.fft.fftfreq(n).astype(dtype)
    return 1.0 / ((4.0 + 2.0 * jnp.cos(w)) / 6.0)


def spline_coefficients(image: jax.Array) -> jax.Array:
    """Periodic cubic B-spline coefficients of ``image [ny, nx]`` (real or complex)."""
    image = jnp.asarray(image)
    ny, nx = image.shape[-2:]
    rdtype = jnp.finfo(jnp.result_type(image.dtype, jnp.float32)).dtype
    gain = _axis_prefilter(ny, rdtype)[:, None] * _axis_prefilter(nx, rdtype)[None, :]
    coeffs = jnp.fft.ifft2(jnp.fft.fft2(image) * gain)
    return coeffs if jnp.iscomplexobj(image) else coeffs.real.astype(image.dtype)


def _bspline_weights(t: jax.Array) -> tuple[jax.Array, ...]:
    """Cubic B-spline weights of the 4 neighbours at offsets -1, 0, 1, 2 for fraction ``t``."""
    s = 1.0 - t
    return (s * s * s / 6.0,
            (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0,
            (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t * t * t) / 6.0,
            t * t * t / 6.0)


def sample(coeffs: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """Evaluate the periodic spline with coefficients ``coeffs [ny, nx]`` at ``(rows, cols)``.

    Args:
      coeffs: ``[ny, nx]`` from :func:`spline_coefficients`.
      rows, cols: real arrays of one common shape ``S``, coordinates in pixels (any value;
        the field of view is periodic).

    Returns:
      ``S`` values, the dtype of ``coeffs``.
    """
    ny, nx = coeffs.shape
    r0 = jnp.floor(rows)
    c0 = jnp.floor(cols)
    wr = _bspline_weights(rows - r0)
    wc = _bspline_weights(cols - c0)
    r0 = r0.astype(jnp.int32)
    c0 = c0.astype(jnp.int32)
    flat = coeffs.reshape(-1)
    out = jnp.zeros(rows.shape, coeffs.dtype)
    for i in range(4):
        ri = jnp.mod(r0 + (i - 1), ny) * nx
        row_sum = jnp.zeros(rows.shape, coeffs.dtype)
        for j in range(4):
            cj = jnp.mod(c0 + (j - 1), nx)
            row_sum = row_sum + wc[j] * flat[ri + cj]
        out = out + wr[i] * row_sum
    return out


def pixel_grid(ny: int, nx: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """Row and column index of every pixel, two ``[ny, nx]`` arrays."""
    return jnp.meshgrid(jnp.arange(ny, dtype=dtype), jnp.arange(nx, dtype=dtype), indexing="ij")


def rotation_source(rows: jax.Array, cols: jax.Array, angle_deg: jax.Array, ny: int, nx: int
                    ) -> tuple[jax.Array, jax.Array]:
    """Source coordinates of a rotation by ``angle_deg`` about the array centre (module
    docstring for the sense), for output coordinates ``(rows, cols)``."""
    theta = jnp.deg2rad(angle_deg)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    dy, dx = rows - cy, cols - cx
    return cos * dy + sin * dx + cy, -sin * dy + cos * dx + cx
