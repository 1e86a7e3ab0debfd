"""Per-line phase ramp against the numpy formula and np.roll."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim


@pytest.mark.parametrize("use_jit", [False, True])
def test_phase_ramp_matches_numpy_formula(use_jit):
    rng = np.random.default_rng(0)
    ny, nx = 16, 24
    k = (rng.normal(size=(ny, nx)) + 1j * rng.normal(size=(ny, nx))).astype(np.complex64)
    d = rng.uniform(-8, 8, size=ny).astype(np.float32)
    fn = jax.jit(sim.apply_motion) if use_jit else sim.apply_motion
    out = fn(jnp.asarray(k), jnp.asarray(d))
    u = np.fft.fftshift(np.fft.fftfreq(nx))
    ref = k.astype(np.complex128) * np.exp(-2j * np.pi * d.astype(np.float64)[:, None] * u[None, :])
    assert out.dtype == jnp.complex64
    assert np.linalg.norm(np.asarray(out) - ref) / np.linalg.norm(ref) <= 1e-5


@pytest.mark.parametrize("shift", [-3, 1, 5])
@pytest.mark.parametrize("nx", [24, 25])
def test_integer_constant_displacement_is_np_roll(shift, nx):
    x = np.random.default_rng(1).random((16, nx)).astype(np.float32)
    k = sim.image_to_kspace(x)
    moved = sim.apply_motion(k, jnp.full((16,), float(shift)))
    img = np.asarray(sim.kspace_to_image(moved))
    np.testing.assert_allclose(img.real, np.roll(x, shift, axis=1), atol=1e-5)
    np.testing.assert_allclose(img.imag, 0.0, atol=1e-5)


def test_displacement_shape_checked():
    with pytest.raises(ValueError, match="one value per"):
        sim.apply_motion(jnp.ones((16, 24), jnp.complex64), jnp.ones(24))
