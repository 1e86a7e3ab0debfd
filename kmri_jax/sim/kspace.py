"""Centred 2-D FFTs in the seed's convention, and complex <-> 2-channel real views.

Convention (docs/conventions.md): ``K = fftshift(fft2(x))`` over the last
two axes with numpy's default (unnormalised forward, 1/N inverse) scaling and no pre-shift;
the inverse is ``ifft2(ifftshift(K))``. Precision follows the input: float32 / complex64 in
-> complex64 out; float64 / complex128 in (with ``jax_enable_x64``) -> complex128 out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_AXES = (-2, -1)


def _complex_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """complex64 for <= 32-bit inputs (ints included), complex128 for 64-bit floats/complex."""
    if jnp.dtype(dtype) in (jnp.dtype(jnp.float64), jnp.dtype(jnp.complex128)):
        return jnp.dtype(jnp.complex128)
    return jnp.dtype(jnp.complex64)


def _check_rank(x: jax.Array, name: str) -> None:
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions [..., ny, nx]; got shape {tuple(x.shape)}."
        )


def image_to_kspace(image: jax.Array) -> jax.Array:
    """Image -> centred k-space, ``fftshift(fft2(image))`` over the last two axes.

    Args:
      image: ``[..., ny, nx]`` real or complex (float32 -> complex64, float64 -> complex128).

    Returns:
      ``[..., ny, nx]`` complex k-space, DC at index ``(ny//2, nx//2)``.
    """
    image = jnp.asarray(image)
    _check_rank(image, "image")
    ny, nx = image.shape[-2:]
    if not jnp.iscomplexobj(image) and ny % 2 == 0 and nx % 2 == 0:
        return _real_image_to_kspace(image)
    image = image.astype(_complex_dtype(image.dtype))
    return jnp.fft.fftshift(jnp.fft.fft2(image, axes=_AXES), axes=_AXES)


def _real_image_to_kspace(image: jax.Array) -> jax.Array:
    """:func:`image_to_kspace` of a real image with even ``ny, nx``, at about half the work.

    Multiplying the image by ``(-1)^(y + x)`` moves DC to ``(ny/2, nx/2)`` (the fftshift, for
    even sizes); ``rfft2`` of that real image gives columns ``0..nx/2`` of the centred
    k-space ``C``, and Hermitian symmetry gives the rest:
    ``C[ky, kx] = conj(C[(ny - ky) % ny, nx - kx])`` for ``kx > nx/2``.
    """
    ny, nx = image.shape[-2:]
    rdtype = jnp.finfo(_complex_dtype(image.dtype)).dtype
    parity = (np.arange(ny)[:, None] + np.arange(nx)[None, :]) % 2
    checker = jnp.asarray(1 - 2 * parity, rdtype)
    half = jnp.fft.rfft2(image.astype(rdtype) * checker, axes=_AXES)  # [..., ny, nx/2 + 1]
    ky, kx = np.arange(ny)[:, None], np.arange(nx)[None, :]
    mirrored = kx > nx // 2
    rows = np.where(mirrored, (ny - ky) % ny, ky)
    cols = np.where(mirrored, nx - kx, kx)
    gathered = half[..., rows, cols]
    return jnp.where(jnp.asarray(mirrored), jnp.conj(gathered), gathered)


def kspace_to_image(kspace: jax.Array) -> jax.Array:
    """Centred k-space -> complex image, ``ifft2(ifftshift(kspace))`` over the last two axes.

    Args:
      kspace: ``[..., ny, nx]`` complex64 (or complex128).

    Returns:
      ``[..., ny, nx]`` complex image of the same precision; take ``jnp.abs`` for magnitude.
    """
    kspace = jnp.asarray(kspace)
    _check_rank(kspace, "kspace")
    kspace = kspace.astype(_complex_dtype(kspace.dtype))
    return jnp.fft.ifft2(jnp.fft.ifftshift(kspace, axes=_AXES), axes=_AXES)


def magnitude_image(kspace: jax.Array) -> jax.Array:
    """The magnitude image ``|ifft2(ifftshift(K))|`` of centred k-space.

    Args:
      kspace: ``[..., ny, nx]`` complex64 (or complex128).

    Returns:
      ``[..., ny, nx]`` float32 (float64) magnitude.
    """
    return jnp.abs(kspace_to_image(kspace))


def to_channels(kspace: jax.Array) -> jax.Array:
    """Complex ``[..., ny, nx]`` -> real ``[..., 2, ny, nx]`` with channels (real, imag).

    complex64 -> float32, complex128 -> float64.
    """
    kspace = jnp.asarray(kspace)
    _check_rank(kspace, "kspace")
    return jnp.stack([jnp.real(kspace), jnp.imag(kspace)], axis=-3)


def from_channels(x: jax.Array) -> jax.Array:
    """Real ``[..., 2, ny, nx]`` (real, imag) -> complex ``[..., ny, nx]``; inverse of
    :func:`to_channels`. float32 -> complex64, float64 -> complex128."""
    x = jnp.asarray(x)
    if x.ndim < 3 or x.shape[-3] != 2:
        raise ValueError(
            f"from_channels expects a real array [..., 2, ny, nx] (real, imag); "
            f"got shape {tuple(x.shape)}."
        )
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError("from_channels expects a real array; got a complex one.")
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    return jax.lax.complex(x[..., 0, :, :].astype(dtype), x[..., 1, :, :].astype(dtype))
