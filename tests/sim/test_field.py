"""Breathing off-resonance (B0): per-line phase, readout shift, spatial field maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage as ndi

import reference_images
from kmri_jax import sim
from kmri_jax.sim import forward

NY, NX = 24, 32
QUIET = 300.0  # dB: noise ~1e-15 of the signal


def smooth_image(ny=NY, nx=NX, dtype=np.float32):
    return reference_images.smooth_image(ny, nx, dtype)


def kspace(image):
    return np.fft.fftshift(np.fft.fft2(image))


def echo_index_segmented(n, etl):
    """numpy reference: echo ``e`` of a segmented train fills k-space segment ``e``."""
    n_shots = -(-n // etl)
    return np.arange(n) // n_shots


@pytest.mark.parametrize("etl,spacing", [(1, 0.0), (4, 0.011)])
def test_line_phase_is_2pi_b0_r_te(etl, spacing):
    x = smooth_image()
    te, b0 = 0.04, 9.0
    p = sim.CorruptionParams(0.0, 15.0, 1.0, QUIET, tr=2.0, te=te, b0_hz=b0)
    out = sim.corrupt(jax.random.key(2), x, p, ordering="segmented", echo_train_length=etl,
                      echo_spacing=spacing)
    te_ky = te + spacing * echo_index_segmented(NY, etl)
    want = 2 * np.pi * b0 * np.asarray(out.trace, np.float64) * te_ky
    k, clean = np.asarray(out.kspace), np.asarray(out.clean)
    got = np.angle(np.sum(k * np.conj(clean), axis=1))
    wrapped = np.angle(np.exp(1j * (got - want)))
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out.off_resonance_hz), b0 * np.asarray(out.trace),
                               rtol=1e-6)
    np.testing.assert_allclose(np.abs(k), np.abs(clean), rtol=1e-4, atol=1e-4 * np.abs(k).max())


def test_uniform_field_map_through_states_equals_the_exact_path():
    """The phase alone (no translation to interpolate): a map of ones is the uniform field."""
    x = smooth_image()
    p = sim.CorruptionParams(0.0, 15.0, 2.0, QUIET, te=0.05, b0_hz=12.0)
    exact = sim.corrupt(jax.random.key(4), x, p)
    binned = sim.corrupt(jax.random.key(4), x, p, field_map=np.ones((NY, NX), np.float32),
                         motion_states=NY)
    scale = float(np.abs(exact.kspace).max())
    np.testing.assert_allclose(np.asarray(binned.kspace), np.asarray(exact.kspace),
                               atol=2e-4 * scale)


@pytest.mark.parametrize("shift", [1, 3, -2])
def test_integer_bandwidth_shift_is_np_roll(shift):
    x = smooth_image()
    ref = np.roll(x, shift, axis=1)
    line = jnp.full(NY, float(shift))
    exact = forward.acquire(jnp.asarray(x), dx=jnp.zeros(NY), shift_px=line)
    states = forward.acquire(jnp.asarray(x), dx=jnp.zeros(NY), shift_px=line,
                             field_map=jnp.ones((NY, NX)), motion_states=2)
    for k in (exact, states):
        got = np.fft.ifft2(np.fft.ifftshift(np.asarray(k)))
        np.testing.assert_allclose(got.real, ref, atol=1e-5)
        np.testing.assert_allclose(got.imag, 0.0, atol=1e-5)


def test_spatial_field_map_per_line_matches_scipy():
    """Line ky from the image distorted by its own shift ``f(p) s_ky`` and multiplied by
    ``exp(2 pi i f(p) phi_ky)``, with scipy's cubic spline (K = ny states: exact)."""
    rng = np.random.default_rng(1)
    x = smooth_image().astype(np.float64)
    f = sim.breathing_field_map((NY, NX), lung_px=(8, 22), decay_mm=6.0).astype(np.float64)
    phase, shift = rng.uniform(-0.4, 0.4, NY), rng.uniform(-2, 2, NY)
    got = forward.acquire(jnp.asarray(x, jnp.float32), dx=jnp.zeros(NY), phase_cycles=phase,
                          shift_px=shift, field_map=jnp.asarray(f, jnp.float32),
                          motion_states=NY)
    rows, cols = np.mgrid[:NY, :NX].astype(np.float64)
    ref = np.zeros((NY, NX), complex)
    for ky in range(NY):
        moved = ndi.map_coordinates(x, [rows, cols - f * shift[ky]], order=3, mode="grid-wrap")
        ref[ky] = kspace(moved * np.exp(2j * np.pi * f * phase[ky]))[ky]
    assert np.linalg.norm(np.asarray(got) - ref) / np.linalg.norm(ref) < 1e-4


def test_field_map_is_one_at_the_lung_edges_and_decays():
    f = sim.breathing_field_map((4, 100), lung_px=(30, 70), axis=1, decay_mm=20.0,
                                spacing_mm=0.5)
    d_mm = np.minimum(np.abs(np.arange(100) - 30), np.abs(np.arange(100) - 70)) * 0.5
    np.testing.assert_allclose(f[2], np.exp(-d_mm / 20.0), rtol=1e-6)
    assert f[0, 30] == f[0, 70] == 1.0
    with pytest.raises(ValueError, match="lung_px"):
        sim.breathing_field_map((4, 4), lung_px=(1.0,))


def test_options_that_cannot_work_name_the_fix():
    x = smooth_image()
    p = sim.CorruptionParams(3.0, 15.0, 2.0, 20.0, b0_hz=5.0)
    with pytest.raises(ValueError, match="motion_states"):
        sim.corrupt(jax.random.key(0), x, p, field_map=np.ones((NY, NX)))
    with pytest.raises(ValueError, match="field_map must be"):
        sim.corrupt(jax.random.key(0), x, p, field_map=np.ones((NY, NX + 1)), motion_states=2)
    with pytest.raises(ValueError, match="readout_bandwidth_hz_per_px"):
        sim.corrupt(jax.random.key(0), x, p, readout_bandwidth_hz_per_px=-1.0)
    with pytest.raises(ValueError, match="b0_hz"):
        sim.corrupt(jax.random.key(0), x, p._replace(b0_hz=float("nan")))


def test_gradients_through_the_field_match_finite_differences_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        x0 = jnp.asarray(smooth_image(12, 16, np.float64))
        f = jnp.asarray(sim.breathing_field_map((12, 16), lung_px=(4, 12), decay_mm=5.0,
                                                dtype=np.float64))
        target = jnp.asarray(rng.normal(size=(12, 16)) + 1j * rng.normal(size=(12, 16)))
        h = 1e-6
        for field_map, states in ((None, 0), (f, 12)):

            def loss(img, b0):
                p = sim.CorruptionParams(2.0, 15.0, 1.0, 60.0, te=0.05, b0_hz=b0)
                out = sim.corrupt(jax.random.key(5), img, p, field_map, motion_states=states,
                                  readout_bandwidth_hz_per_px=4.0)
                return jnp.sum(jnp.abs(out.kspace - target) ** 2) / out.kspace.size

            b0 = jnp.asarray(7.0)
            g_img, g_b0 = jax.grad(loss, argnums=(0, 1))(x0, b0)
            v = jnp.asarray(rng.normal(size=x0.shape))
            fd = (loss(x0 + h * v, b0) - loss(x0 - h * v, b0)) / (2 * h)
            assert float(jnp.vdot(g_img, v)) == pytest.approx(float(fd), rel=1e-5)
            fd = (loss(x0, b0 + h) - loss(x0, b0 - h)) / (2 * h)
            assert float(g_b0) == pytest.approx(float(fd), rel=1e-5)
