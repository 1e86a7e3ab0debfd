"""Image-quality metrics on device: SSIM, PSNR and NRMSE per sample, as scikit-image defines them.

Images live on a static padded grid ``[B, H, W]``; each sample's valid (unpadded) region is its
top-left ``valid_shape[b] = (rows, cols)``. Every metric equals scikit-image's on the cropped
image ``img[b, :rows, :cols]``:

- :func:`ssim`: ``skimage.metrics.structural_similarity(ref, pred, data_range=...)`` with its
  defaults (7x7 uniform window, sample covariance ``49/48``, K1 = 0.01, K2 = 0.03, the SSIM map
  averaged after dropping ``(7 - 1) // 2 = 3`` pixels at each border). The averaged pixels are
  exactly those whose 7x7 window lies inside the valid region, so box sums over the padded grid
  (``lax.reduce_window``, 'VALID') never see padding and no boundary mode is involved.
- :func:`psnr`: ``peak_signal_noise_ratio(ref, pred, data_range=...)``.
- :func:`nrmse`: ``normalized_root_mse(ref, pred)`` ('euclidean': ``||ref - pred|| / ||ref||``).

:func:`image_metrics` applies the project's metric definition (docs/conventions.md) to 2-channel
k-space: magnitude images
``|ifft2(ifftshift(K))|`` of prediction and ground truth, both divided by the ground truth's
maximum over the valid region, then the three metrics with ``data_range=1``.

All functions are pure, jit-able and vmap-able (no host synchronisation, static shapes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kmri_jax import sim

__all__ = ["magnitude_image", "valid_mask", "ssim", "psnr", "nrmse", "image_metrics"]

_WIN = 7  # scikit-image's default uniform window
_K1, _K2 = 0.01, 0.03


def magnitude_image(channels: jax.Array) -> jax.Array:
    """:func:`kmri_jax.sim.magnitude_image` of 2-channel k-space: ``[..., 2, H, W]`` float
    (real, imaginary) -> ``[..., H, W]`` float32."""
    return sim.magnitude_image(sim.from_channels(jnp.asarray(channels, jnp.float32)))


def _batched_valid_shape(valid_shape: ArrayLike, batch: int) -> jax.Array:
    """``[2]`` or ``[B, 2]`` int -> ``[B, 2]`` int32."""
    vs = jnp.asarray(valid_shape, jnp.int32)
    if vs.shape not in ((2,), (batch, 2)):
        raise ValueError(f"valid_shape must have shape [2] or [{batch}, 2], got {vs.shape}")
    return jnp.broadcast_to(vs, (batch, 2))


def _region_mask(rows: jax.Array, cols: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``[H, W]`` bool, true on the top-left ``rows x cols`` block."""
    r = jnp.arange(shape[0])[:, None] < rows
    c = jnp.arange(shape[1])[None, :] < cols
    return r & c


def valid_mask(valid_shape: ArrayLike, batch: int, shape: tuple[int, int]) -> jax.Array:
    """The valid (unpadded) region of each sample: ``[B, H, W]`` bool, true on the top-left
    ``valid_shape[b] = (rows, cols)`` block; ``valid_shape`` is ``[B, 2]`` or ``[2]`` int."""
    valid = _batched_valid_shape(valid_shape, batch)
    return jax.vmap(lambda v: _region_mask(v[0], v[1], shape))(valid)


def _check_images(pred: jax.Array, ref: jax.Array) -> None:
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise ValueError(
            f"expected pred and ref images of the same shape [B, H, W], got {pred.shape} and "
            f"{ref.shape}"
        )


def _ssim_one(x: jax.Array, y: jax.Array, valid: jax.Array, data_range: float) -> jax.Array:
    """SSIM of one image pair ``[H, W]`` (x: prediction, y: reference) on its valid region."""
    h, w = x.shape
    # Subtract the reference's mean (one constant for both images): SSIM's variances and
    # covariance do not change and the box moments lose less to float32 cancellation; the
    # means get the constant back.
    mask = _region_mask(valid[0], valid[1], (h, w))
    offset = jnp.sum(jnp.where(mask, y, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    xc, yc = x - offset, y - offset
    moments = jnp.stack([xc, yc, xc * xc, yc * yc, xc * yc])  # [5, H, W]
    box = jax.lax.reduce_window(
        moments, 0.0, jax.lax.add, (1, _WIN, _WIN), (1, 1, 1), "VALID"
    ) / (_WIN * _WIN)  # [5, H - 6, W - 6]; index (i, j) is the window centred at (i+3, j+3)
    mx, my, mxx, myy, mxy = box
    cov_norm = _WIN * _WIN / (_WIN * _WIN - 1.0)
    vx = cov_norm * (mxx - mx * mx)
    vy = cov_norm * (myy - my * my)
    vxy = cov_norm * (mxy - mx * my)
    ux, uy = mx + offset, my + offset
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    # Centres (i+3, j+3) with the whole window in the valid region: i < rows - 6, j < cols - 6.
    inner = _region_mask(valid[0] - (_WIN - 1), valid[1] - (_WIN - 1), s.shape)
    return jnp.sum(jnp.where(inner, s, 0.0)) / jnp.sum(inner)


def ssim(
    pred: jax.Array, ref: jax.Array, valid_shape: ArrayLike, *, data_range: float = 1.0
) -> jax.Array:
    """Mean SSIM per sample on the valid region (scikit-image's definition, see module doc).

    Args:
      pred: ``[B, H, W]`` float, the image under test.
      ref: ``[B, H, W]`` float, the ground truth.
      valid_shape: ``[B, 2]`` or ``[2]`` int, (rows, cols) of the valid top-left region; each
        at least 7 (scikit-image's window), else the result is NaN.
      data_range: the images' data range (scikit-image's ``data_range``).

    Returns:
      ``[B]`` float32.
    """
    pred = jnp.asarray(pred, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    _check_images(pred, ref)
    if min(pred.shape[1:]) < _WIN:
        raise ValueError(f"ssim needs images of at least {_WIN}x{_WIN}, got {pred.shape[1:]}")
    valid = _batched_valid_shape(valid_shape, pred.shape[0])
    return jax.vmap(_ssim_one, in_axes=(0, 0, 0, None))(pred, ref, valid, data_range)


def _mse_and_ref_power(
    pred: jax.Array, ref: jax.Array, valid_shape: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """Per-sample mean of (ref - pred)^2 and of ref^2 over the valid region, ``[B]`` each."""
    pred = jnp.asarray(pred, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    _check_images(pred, ref)
    mask = valid_mask(valid_shape, pred.shape[0], pred.shape[1:])
    count = jnp.sum(mask, axis=(1, 2)).astype(jnp.float32)
    mse = jnp.sum(jnp.where(mask, (ref - pred) ** 2, 0.0), axis=(1, 2)) / count
    power = jnp.sum(jnp.where(mask, ref * ref, 0.0), axis=(1, 2)) / count
    return mse, power


def psnr(
    pred: jax.Array, ref: jax.Array, valid_shape: ArrayLike, *, data_range: float = 1.0
) -> jax.Array:
    """PSNR in dB per sample on the valid region: ``10 log10(data_range^2 / MSE)``.

    Args: as :func:`ssim`. Returns: ``[B]`` float32 (``inf`` for identical images).
    """
    mse, _ = _mse_and_ref_power(pred, ref, valid_shape)
    return 10.0 * jnp.log10(data_range**2 / mse)


def nrmse(pred: jax.Array, ref: jax.Array, valid_shape: ArrayLike) -> jax.Array:
    """Normalised RMSE per sample on the valid region: ``sqrt(MSE) / sqrt(mean(ref^2))``.

    Args: as :func:`ssim` (``ref`` is scikit-image's ``image_true``). Returns: ``[B]`` float32.
    """
    mse, power = _mse_and_ref_power(pred, ref, valid_shape)
    return jnp.sqrt(mse) / jnp.sqrt(power)


def image_metrics(
    pred_kspace_channels: jax.Array, ref_kspace_channels: jax.Array, valid_shape: ArrayLike
) -> dict[str, jax.Array]:
    """SSIM, PSNR, NRMSE of reconstructed magnitude images, per sample (docs/conventions.md).

    Magnitude images ``|ifft2(ifftshift(K))|`` of both inputs, divided by the ground-truth
    image's maximum over the valid region, compared on the valid region with ``data_range=1``.

    Args:
      pred_kspace_channels: ``[B, 2, H, W]`` float, predicted (or corrupted) k-space channels.
      ref_kspace_channels: ``[B, 2, H, W]`` float, ground-truth k-space channels (any common
        scale: the normalisation removes it).
      valid_shape: ``[B, 2]`` or ``[2]`` int, (rows, cols) of the valid image region.

    Returns:
      ``{"ssim": [B], "psnr": [B], "nrmse": [B]}``, float32.
    """
    pred = magnitude_image(pred_kspace_channels)
    ref = magnitude_image(ref_kspace_channels)
    _check_images(pred, ref)
    valid = _batched_valid_shape(valid_shape, ref.shape[0])
    mask = valid_mask(valid, ref.shape[0], ref.shape[1:])
    scale = jnp.max(jnp.where(mask, ref, 0.0), axis=(1, 2))[:, None, None]
    pred, ref = pred / scale, ref / scale
    return {
        "ssim": ssim(pred, ref, valid),
        "psnr": psnr(pred, ref, valid),
        "nrmse": nrmse(pred, ref, valid),
    }
