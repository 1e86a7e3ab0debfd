"""Centred FFTs and channel views against numpy's formulas (docs/conventions.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim


def _rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b)


@pytest.mark.parametrize("use_jit", [False, True])
def test_image_to_kspace_matches_numpy(use_jit):
    x = np.random.default_rng(0).random((16, 24)).astype(np.float32)
    fn = jax.jit(sim.image_to_kspace) if use_jit else sim.image_to_kspace
    k = fn(jnp.asarray(x))
    ref = np.fft.fftshift(np.fft.fft2(x.astype(np.float64)))
    assert k.dtype == jnp.complex64 and k.shape == (16, 24)
    assert _rel_err(k, ref) <= 1e-5


@pytest.mark.parametrize("use_jit", [False, True])
def test_kspace_to_image_matches_numpy(use_jit):
    rng = np.random.default_rng(1)
    k = (rng.normal(size=(2, 16, 24)) + 1j * rng.normal(size=(2, 16, 24))).astype(np.complex64)
    fn = jax.jit(sim.kspace_to_image) if use_jit else sim.kspace_to_image
    x = fn(jnp.asarray(k))
    ref = np.fft.ifft2(np.fft.ifftshift(k.astype(np.complex128), axes=(-2, -1)))
    assert x.dtype == jnp.complex64 and x.shape == (2, 16, 24)
    assert _rel_err(x, ref) <= 1e-5


@pytest.mark.parametrize("shape", [(16, 24), (3, 10, 12), (15, 24), (16, 25), (9, 7)])
def test_real_and_complex_paths_match_numpy(shape):
    """Real even-sized images take the rfft + Hermitian path, the rest the complex fft2: both
    are numpy's ``fftshift(fft2(x))``, and a complex image of the same values gives the same."""
    x = np.random.default_rng(4).random(shape).astype(np.float32)
    ref = np.fft.fftshift(np.fft.fft2(x.astype(np.float64)), axes=(-2, -1))
    assert _rel_err(sim.image_to_kspace(jnp.asarray(x)), ref) <= 1e-6
    assert _rel_err(sim.image_to_kspace(jnp.asarray(x, jnp.complex64)), ref) <= 1e-6


def test_real_path_gradient_is_parseval():
    """d/dx sum |FFT(x)|^2 = 2 ny nx x (Parseval), through the rfft + Hermitian gather."""
    x = jnp.asarray(np.random.default_rng(5).random((8, 12)), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(jnp.abs(sim.image_to_kspace(x)) ** 2))(x)
    np.testing.assert_allclose(np.asarray(grad), 2 * 8 * 12 * np.asarray(x), rtol=1e-4)


def test_round_trip_and_dc_position():
    x = np.random.default_rng(2).random((16, 24)).astype(np.float32)
    k = np.asarray(sim.image_to_kspace(x))
    np.testing.assert_allclose(k[8, 12], x.sum(), rtol=1e-5)  # DC at (ny//2, nx//2)
    back = np.asarray(sim.kspace_to_image(k))
    np.testing.assert_allclose(back.real, x, atol=1e-5)
    np.testing.assert_allclose(back.imag, 0.0, atol=1e-5)


def test_float64_gives_complex128():
    with jax.enable_x64(True):
        x = np.random.default_rng(3).random((16, 24))
        k = sim.image_to_kspace(jnp.asarray(x, jnp.float64))
        assert k.dtype == jnp.complex128
        np.testing.assert_allclose(np.asarray(k), np.fft.fftshift(np.fft.fft2(x)), rtol=1e-12,
                                   atol=1e-12)
        assert sim.kspace_to_image(k).dtype == jnp.complex128
        assert sim.to_channels(k).dtype == jnp.float64


@pytest.mark.parametrize("use_jit", [False, True])
def test_channels_match_numpy_and_invert(use_jit):
    rng = np.random.default_rng(4)
    k = (rng.normal(size=(3, 16, 24)) + 1j * rng.normal(size=(3, 16, 24))).astype(np.complex64)
    to_c = jax.jit(sim.to_channels) if use_jit else sim.to_channels
    from_c = jax.jit(sim.from_channels) if use_jit else sim.from_channels
    x = np.asarray(to_c(k))
    assert x.shape == (3, 2, 16, 24) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.stack([k.real, k.imag], axis=1))
    back = from_c(x)
    assert back.dtype == jnp.complex64
    np.testing.assert_array_equal(np.asarray(back), k)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        sim.image_to_kspace(jnp.ones(5))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, ny, nx\]"):
        sim.from_channels(jnp.ones((3, 16, 24)))
