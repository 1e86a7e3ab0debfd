"""Metrics against scikit-image (float64) on cropped images; several valid shapes per batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from kmri_jax.train import metrics

H, W = 48, 56
VALID = np.array([[48, 56], [40, 33], [7, 9], [21, 50]], np.int32)


def _sk(ref: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """scikit-image on each cropped pair (ref is image_true), float64."""
    out = {"ssim": [], "psnr": [], "nrmse": []}
    for r, p, (h, w) in zip(ref, pred, VALID):
        r, p = r[:h, :w].astype(np.float64), p[:h, :w].astype(np.float64)
        out["ssim"].append(structural_similarity(r, p, data_range=1))
        out["psnr"].append(peak_signal_noise_ratio(r, p, data_range=1))
        out["nrmse"].append(normalized_root_mse(r, p))
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """Phantom references in [0, 1] (zero padding outside the valid region), noisy predictions
    with garbage in the padding (which must not matter)."""
    rng = np.random.default_rng(0)
    phantom = resize(shepp_logan_phantom(), (H, W), anti_aliasing=True)
    ref = np.zeros((len(VALID), H, W))
    for i, (h, w) in enumerate(VALID):
        crop = phantom[H // 2 - h // 2 : H // 2 - h // 2 + h, W // 2 - w // 2 : W // 2 - w // 2 + w]
        crop = crop + 0.05 * i + 0.02 * rng.random(crop.shape)
        ref[i, :h, :w] = crop / crop.max()
    noise = [0.01, 0.1, 0.05, 0.3]
    pred = np.abs(ref + rng.normal(size=ref.shape) * np.array(noise)[:, None, None])
    pred[1] = 0.7 * pred[1] + 0.2  # a contrast/brightness change
    outside = np.ones((len(VALID), H, W), bool)
    for i, (h, w) in enumerate(VALID):
        outside[i, :h, :w] = False
    pred[outside] = 5.0
    return ref.astype(np.float32), pred.astype(np.float32)


def _assert_close(got: dict[str, jax.Array], expected: dict[str, np.ndarray]) -> None:
    for name in ("ssim", "psnr", "nrmse"):
        assert got[name].shape == (len(VALID),) and got[name].dtype == jnp.float32
    np.testing.assert_allclose(got["ssim"], expected["ssim"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["psnr"], expected["psnr"], rtol=1e-5)
    np.testing.assert_allclose(got["nrmse"], expected["nrmse"], rtol=1e-5)


@pytest.mark.parametrize("use_jit", [False, True])
def test_image_metrics_match_scikit_image(images, use_jit: bool) -> None:  # noqa: ANN001
    ref, pred = images
    wrap = jax.jit if use_jit else (lambda f: f)
    args = (jnp.asarray(pred), jnp.asarray(ref), jnp.asarray(VALID))
    got = {
        "ssim": wrap(metrics.ssim)(*args),
        "psnr": wrap(metrics.psnr)(*args),
        "nrmse": wrap(metrics.nrmse)(*args),
    }
    _assert_close(got, _sk(ref, pred))


def test_ssim_identical_images_is_one(images) -> None:  # noqa: ANN001
    ref, _ = images
    np.testing.assert_allclose(metrics.ssim(ref, ref, VALID), 1.0, atol=1e-6)


def _to_channels(images: np.ndarray) -> np.ndarray:
    """Seed convention: K = fftshift(fft2(x)), [Re, Im] / (max|K| + 1e-8), float32."""
    k = np.fft.fftshift(np.fft.fft2(images.astype(np.float64)), axes=(-2, -1))
    k = k / (np.abs(k).max(axis=(-2, -1), keepdims=True) + 1e-8)
    return np.stack([k.real, k.imag], axis=1).astype(np.float32)


@pytest.mark.parametrize("use_jit", [False, True])
def test_kspace_image_metrics_follow_design(images, use_jit: bool) -> None:  # noqa: ANN001
    """|ifft2c| of both, divided by the ground truth's max, cropped, scikit-image."""
    ref_img, _ = images
    rng = np.random.default_rng(1)
    ref_k = _to_channels(ref_img)
    pred_k = ref_k + rng.normal(scale=2e-3, size=ref_k.shape).astype(np.float32)

    def mag(ch: np.ndarray) -> np.ndarray:
        k = ch[:, 0].astype(np.float64) + 1j * ch[:, 1]
        return np.abs(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1))))

    ref_m, pred_m = mag(ref_k), mag(pred_k)
    ref_n, pred_n = np.zeros_like(ref_m), np.zeros_like(pred_m)
    for i, (h, w) in enumerate(VALID):
        peak = ref_m[i, :h, :w].max()
        ref_n[i], pred_n[i] = ref_m[i] / peak, pred_m[i] / peak
    fn = jax.jit(metrics.image_metrics) if use_jit else metrics.image_metrics
    got = fn(jnp.asarray(pred_k), jnp.asarray(ref_k), jnp.asarray(VALID))
    assert set(got) == {"ssim", "psnr", "nrmse"}
    _assert_close(got, _sk(ref_n, pred_n))


def test_image_metrics_vmap_over_a_leading_axis(images) -> None:  # noqa: ANN001
    ref_img, pred_img = images
    ref_k, pred_k = _to_channels(ref_img), _to_channels(pred_img)
    stacked = jax.vmap(metrics.image_metrics, in_axes=(0, 0, None))(
        jnp.stack([pred_k, ref_k]), jnp.stack([ref_k, ref_k]), jnp.asarray(VALID)
    )
    single = metrics.image_metrics(jnp.asarray(pred_k), jnp.asarray(ref_k), jnp.asarray(VALID))
    for name in ("ssim", "psnr", "nrmse"):
        np.testing.assert_allclose(stacked[name][0], single[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stacked["ssim"][1], 1.0, atol=1e-5)


def test_bad_shapes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="valid_shape"):
        metrics.ssim(jnp.ones((2, 8, 8)), jnp.ones((2, 8, 8)), jnp.ones((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(jnp.ones((2, 6, 8)), jnp.ones((2, 6, 8)), jnp.array([6, 8]))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        metrics.psnr(jnp.ones((2, 8, 8)), jnp.ones((2, 8, 9)), jnp.array([8, 8]))
