"""Losses against numpy references computed on cropped arrays."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax.train import losses

H, W = 12, 10
VALID = np.array([[12, 10], [7, 9], [5, 4]], np.int32)


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(3, 2, H, W)).astype(np.float32)
    target = rng.normal(size=(3, 2, H, W)).astype(np.float32)
    return pred, target


def _np_magnitude(channels: np.ndarray) -> np.ndarray:
    k = channels[:, 0].astype(np.float64) + 1j * channels[:, 1]
    return np.abs(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1))))


def _ref_seed_masked(pred, target, weight):  # noqa: ANN001, ANN202
    num = sum(w * np.abs(p[:, :h, :w_] - t[:, :h, :w_]).sum()
              for p, t, (h, w_), w in zip(pred, target, VALID, weight))
    den = sum(w * 2 * h * w_ for (h, w_), w in zip(VALID, weight))
    return num / den


def _ref_kspace(pred, target, weight):  # noqa: ANN001, ANN202
    per = np.abs(pred - target).mean(axis=(1, 2, 3))
    return (weight * per).sum() / weight.sum()


def _ref_image(pred, target, weight, normalize):  # noqa: ANN001, ANN202
    pi, ti = _np_magnitude(pred), _np_magnitude(target)
    num = den = 0.0
    for p, t, (h, w_), w in zip(pi, ti, VALID, weight):
        p, t = p[:h, :w_], t[:h, :w_]
        if normalize:
            p, t = p / t.max(), t / t.max()
        num += w * np.abs(p - t).sum()
        den += w * h * w_
    return num / den


WEIGHTS = [np.ones(3, np.float32), np.array([1.0, 0.0, 2.0], np.float32)]


@pytest.mark.parametrize("use_jit", [False, True])
@pytest.mark.parametrize("weight", WEIGHTS, ids=["ones", "padded"])
def test_losses_match_numpy(batch, use_jit: bool, weight: np.ndarray) -> None:  # noqa: ANN001
    pred, target = batch
    wrap = jax.jit if use_jit else (lambda f: f)
    args = (jnp.asarray(pred), jnp.asarray(target), jnp.asarray(VALID))
    w = jnp.asarray(weight)
    got = {
        "seed_masked_l1": wrap(losses.seed_masked_l1)(*args, weight=w),
        "kspace_l1": wrap(losses.kspace_l1)(*args, weight=w),
        "image_l1": wrap(losses.image_l1)(*args, weight=w),
        "image_l1_raw": wrap(lambda *a, weight: losses.image_l1(*a, weight=weight, normalize=False))(
            *args, weight=w
        ),
    }
    expected = {
        "seed_masked_l1": _ref_seed_masked(pred, target, weight),
        "kspace_l1": _ref_kspace(pred, target, weight),
        "image_l1": _ref_image(pred, target, weight, True),
        "image_l1_raw": _ref_image(pred, target, weight, False),
    }
    for name, value in got.items():
        assert value.shape == () and value.dtype == jnp.float32
        np.testing.assert_allclose(float(value), expected[name], rtol=1e-5, err_msg=name)


def test_weight_none_equals_ones_and_zero_weights_give_zero(batch) -> None:  # noqa: ANN001
    pred, target = map(jnp.asarray, batch)
    for name in ("seed_masked_l1", "kspace_l1", "image_l1"):
        fn = losses.get_loss(name)
        np.testing.assert_allclose(
            fn(pred, target, VALID), fn(pred, target, VALID, weight=jnp.ones(3)), rtol=1e-6
        )
        assert float(fn(pred, target, VALID, weight=jnp.zeros(3))) == 0.0


def test_seed_mask_ignores_outside_and_broadcasts_valid_shape(batch) -> None:  # noqa: ANN001
    pred, target = batch
    changed = pred.copy()
    changed[:, :, 6:, :] += 100.0  # outside a (6, 10) region
    a = losses.seed_masked_l1(jnp.asarray(pred), jnp.asarray(target), jnp.array([6, 10]))
    b = losses.seed_masked_l1(jnp.asarray(changed), jnp.asarray(target), jnp.array([6, 10]))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_hybrid_and_registry(batch) -> None:  # noqa: ANN001
    pred, target = map(jnp.asarray, batch)
    weights = {"kspace_l1": 0.5, "image_l1": 2.0, "seed_masked_l1": 1.0}
    fn = jax.jit(losses.get_loss("hybrid", weights=weights))
    expected = (
        0.5 * losses.kspace_l1(pred, target, VALID)
        + 2.0 * losses.image_l1(pred, target, VALID)
        + losses.seed_masked_l1(pred, target, VALID)
    )
    np.testing.assert_allclose(fn(pred, target, VALID), expected, rtol=1e-6)
    # Gradients flow through every component.
    grad = jax.grad(lambda p: fn(p, target, VALID))(pred)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0

    with pytest.raises(ValueError, match="valid names.*image_l1.*kspace_l1"):
        losses.get_loss("l2")
    with pytest.raises(ValueError, match="needs weights"):
        losses.get_loss("hybrid")
    with pytest.raises(ValueError, match="unknown component 'l2'"):
        losses.hybrid(pred, target, VALID, weights={"l2": 1.0})
    with pytest.raises(ValueError, match="no option"):
        losses.get_loss("kspace_l1", normalize=True)


def test_get_loss_checks_hybrid_components_early() -> None:
    with pytest.raises(ValueError, match=r"unknown component\(s\) \['ssim'\]"):
        losses.get_loss("hybrid", weights={"kspace_l1": 1.0, "ssim": 1.0})
