"""Noise level against the SNR formula; untouched lines stay bit-for-bit unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim


def _kspace_and_mask(ny=256, nx=128, seed=0):
    rng = np.random.default_rng(seed)
    k = (rng.normal(size=(ny, nx)) * 3 + 1j * rng.normal(size=(ny, nx)) + 0.5).astype(np.complex64)
    mask = np.zeros(ny, bool)
    mask[rng.choice(ny, ny // 2, replace=False)] = True
    return k, mask


@pytest.mark.parametrize("snr_db", [15.0, 20.0, 25.0])
@pytest.mark.parametrize("use_jit", [False, True])
def test_noise_std_matches_formula(snr_db, use_jit):
    k, mask = _kspace_and_mask()
    fn = jax.jit(sim.add_noise) if use_jit else sim.add_noise
    out = np.asarray(fn(jax.random.key(1), jnp.asarray(k), jnp.asarray(mask), snr_db=snr_db))
    acquired = k[mask].astype(np.complex128)
    sigma = np.sqrt(np.mean(np.abs(acquired) ** 2)) / 10 ** (snr_db / 20)
    noise = out[mask].astype(np.complex128) - acquired
    assert abs(np.sqrt(np.mean(np.abs(noise) ** 2)) / sigma - 1) < 0.02
    for part in (noise.real, noise.imag):  # sigma/sqrt(2) per real component, zero mean
        assert abs(part.std() / (sigma / np.sqrt(2)) - 1) < 0.02
        assert abs(part.mean()) < 0.05 * sigma


def test_unacquired_lines_unchanged_exactly():
    k, mask = _kspace_and_mask(ny=32, nx=48)
    out = np.asarray(sim.add_noise(jax.random.key(2), k, mask, snr_db=10.0))
    np.testing.assert_array_equal(out[~mask], k[~mask])
    assert np.all(out[mask] != k[mask])


def test_noise_sigma_uses_acquired_entries_only():
    k, mask = _kspace_and_mask(ny=32, nx=48)
    k[~mask] *= 1000.0  # must not influence sigma
    ref = np.sqrt(np.mean(np.abs(k[mask].astype(np.complex128)) ** 2)) / 10 ** (20 / 20)
    np.testing.assert_allclose(float(sim.noise_sigma(k, mask, snr_db=20.0)), ref, rtol=1e-5)


def test_float64_noise_keeps_precision():
    with jax.enable_x64(True):
        k, mask = _kspace_and_mask(ny=16, nx=24)
        out = sim.add_noise(jax.random.key(0), jnp.asarray(k, jnp.complex128), mask, snr_db=20.0)
        assert out.dtype == jnp.complex128
