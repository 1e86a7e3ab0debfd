"""``cis_turns`` against numpy's float64 exp(2 pi i t), and its derivative."""

import jax
import jax.numpy as jnp
import numpy as np

from kmri_jax.sim.phasor import cis_turns


def test_matches_numpy_over_wide_range():
    rng = np.random.default_rng(0)
    t = np.concatenate([np.linspace(-3, 3, 100_001), rng.uniform(-500, 500, 100_000),
                        np.arange(-8, 9) / 8.0]).astype(np.float32)  # octant edges exactly
    out = np.asarray(jax.jit(cis_turns)(t))
    ref = np.exp(2j * np.pi * t.astype(np.float64))
    assert out.dtype == np.complex64
    assert np.abs(out - ref).max() < 3e-7


def test_gradient_matches_derivative():
    t = jnp.asarray(np.random.default_rng(1).uniform(-4, 4, 2000), jnp.float32)
    g_re = jax.grad(lambda t: jnp.sum(jnp.real(cis_turns(t))))(t)
    g_im = jax.grad(lambda t: jnp.sum(jnp.imag(cis_turns(t))))(t)
    t64 = np.asarray(t, np.float64)
    np.testing.assert_allclose(np.asarray(g_re), -2 * np.pi * np.sin(2 * np.pi * t64), atol=2e-6)
    np.testing.assert_allclose(np.asarray(g_im), 2 * np.pi * np.cos(2 * np.pi * t64), atol=2e-6)


def test_float64():
    with jax.enable_x64(True):
        t = np.random.default_rng(2).uniform(-100, 100, 1000)
        out = cis_turns(jnp.asarray(t, jnp.float64))
        assert out.dtype == jnp.complex128
        np.testing.assert_allclose(np.asarray(out), np.exp(2j * np.pi * t), atol=1e-12)
