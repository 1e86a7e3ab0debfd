"""Receive coils: maps, combination, correlated noise, SNR of the combined image, motion
with stationary coils."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference_images
from kmri_jax import sim
from kmri_jax.sim import coils as coils_lib

NY, NX = 24, 32


def smooth_image(ny=NY, nx=NX, dtype=np.float32):
    return reference_images.smooth_image(ny, nx, dtype)


def fft2c(x):
    return np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))


def ifft2c(k):
    return np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)))


@pytest.mark.parametrize("n_coils", [1, 4, 8])
def test_maps_have_unit_sum_of_squares_and_differ(n_coils):
    maps = sim.coil_maps((NY, NX), n_coils=n_coils)
    assert maps.shape == (n_coils, NY, NX)
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-6)
    if n_coils > 1:  # each coil sees most near its own position
        peaks = {np.unravel_index(np.argmax(np.abs(m)), m.shape) for m in maps}
        assert len(peaks) == n_coils


def test_combination_without_motion_or_noise_returns_the_image():
    x = smooth_image()
    maps = sim.coil_maps((NY, NX), n_coils=8)
    p = sim.CorruptionParams(0.0, 15.0, 1.0, 300.0)
    out = sim.corrupt(jax.random.key(0), x, p, coil_maps=maps, motion_states=1)
    np.testing.assert_allclose(np.asarray(out.clean), fft2c(maps * x), atol=1e-5 * NY * NX)
    rss = sim.coil_combine(out.kspace)
    np.testing.assert_allclose(np.asarray(rss), np.abs(x), atol=1e-5)
    sense = sim.coil_combine(out.kspace, maps=maps)
    np.testing.assert_allclose(np.asarray(sense), x, atol=1e-5)


def sample_noise(n_coils, covariance, snr_db, samples, acceleration=1.0):
    x = smooth_image(32, 32)
    maps = sim.coil_maps((32, 32), n_coils=n_coils)
    p = sim.CorruptionParams(0.0, 15.0, acceleration, snr_db)
    keys = jax.random.split(jax.random.key(7), samples)
    run = jax.jit(jax.vmap(lambda k: sim.corrupt(k, jnp.asarray(x), p, coil_maps=maps,
                                                 noise_covariance=covariance,
                                                 motion_states=1)))
    out = run(keys)
    quiet = sim.corrupt(keys[0], x, p._replace(snr_db=300.0), coil_maps=maps, motion_states=1)
    return x, maps, out, quiet


def test_noise_covariance_across_coils_matches_the_given_one():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    cov = a @ a.conj().T / 4 + np.eye(4)
    _, maps, out, quiet = sample_noise(4, cov.astype(np.complex64), 20.0, 16)
    mask = np.asarray(out.mask[0])
    sigma = float(coils_lib.coil_noise_sigma(jnp.asarray(quiet.kspace), quiet.mask, maps,
                                             snr_db=20.0))
    noise = (np.asarray(out.kspace) - np.asarray(quiet.kspace)[None])[:, :, mask, :]
    n = noise.transpose(1, 0, 2, 3).reshape(4, -1)  # [C, entries]
    empirical = n @ n.conj().T / n.shape[1] / sigma**2
    assert np.max(np.abs(empirical - cov)) / np.max(np.abs(cov)) < 0.05


@pytest.mark.parametrize("n_coils", [1, 8])
@pytest.mark.parametrize("acceleration", [1.0, 3.0])
def test_snr_holds_on_the_combined_image(n_coils, acceleration):
    snr_db = 18.0
    _, maps, out, quiet = sample_noise(n_coils, None, snr_db, 12, acceleration)
    mask = np.asarray(out.mask)
    # each sample may draw its own mask: compare each with its own noiseless zero-filled image
    ratios = []
    for i in range(mask.shape[0]):
        clean_i = np.asarray(quiet.clean) * mask[i][None, :, None]
        signal = np.sum(np.conj(maps) * ifft2c(clean_i), axis=0)
        noisy = np.sum(np.conj(maps) * ifft2c(np.asarray(out.kspace[i])), axis=0)
        ratios.append(np.sqrt(np.mean(np.abs(signal) ** 2) / np.mean(np.abs(noisy - signal) ** 2)))
    assert 20 * np.log10(np.mean(ratios)) == pytest.approx(snr_db, abs=0.25)


def test_one_coil_of_unit_magnitude_has_the_seed_noise_level():
    x = smooth_image()
    maps = np.ones((1, NY, NX), np.complex64)
    p = sim.CorruptionParams(3.0, 15.0, 3.0, 20.0)
    single = sim.corrupt(jax.random.key(3), x, p._replace(snr_db=300.0))
    masked = jnp.where(single.mask[:, None], single.kspace, 0)
    seed_sigma = sim.noise_sigma(masked, single.mask, snr_db=20.0)
    coil_sigma = coils_lib.coil_noise_sigma(masked[None], single.mask, maps, snr_db=20.0)
    assert float(coil_sigma) == pytest.approx(float(seed_sigma), rel=1e-5)


def moving_reference(x, maps, dx):
    """Line ky of the k-space of S_c times the image shifted by its own dx (exact Fourier
    shift, numpy): the coils stay where they are."""
    u = np.fft.fftshift(np.fft.fftfreq(x.shape[1]))
    out = np.zeros(maps.shape, complex)
    for ky in range(x.shape[0]):
        moved = ifft2c(fft2c(x) * np.exp(-2j * np.pi * dx[ky] * u)[None, :])
        out[:, ky] = fft2c(maps * moved)[:, ky]
    return out


def test_motion_with_stationary_coils_matches_the_per_line_reference():
    x = smooth_image().astype(np.float64)
    maps = sim.coil_maps((NY, NX), n_coils=4).astype(np.complex128)
    dx = 4.0 * np.sin(np.linspace(0, 7, NY))
    ref = moving_reference(x, maps, dx)
    errors = {}
    for k in (1, 4, NY):
        got = sim.forward.acquire(jnp.asarray(x, jnp.float32), dx=jnp.asarray(dx, jnp.float32),
                                  coil_maps=jnp.asarray(maps, jnp.complex64), motion_states=k)
        errors[k] = np.linalg.norm(np.asarray(got) - ref) / np.linalg.norm(ref)
    assert errors[NY] < 1e-5
    assert errors[1] > errors[4] > errors[NY]
    # the coils moving with the object (one state) differs from the reference
    assert errors[1] > 1e-3


def test_jit_vmap_with_coils_equals_the_loop():
    rng = np.random.default_rng(5)
    b = 3
    images = jnp.asarray(rng.random((b, NY, NX)), jnp.float32)
    maps = sim.coil_maps((NY, NX), n_coils=4)
    field = sim.breathing_field_map((NY, NX), lung_px=(6, 20), decay_mm=8.0)
    params = sim.CorruptionParams(
        amplitude_px=jnp.asarray(rng.uniform(1, 6, b), jnp.float32),
        rate_bpm=jnp.asarray(rng.uniform(10, 20, b), jnp.float32),
        acceleration=jnp.asarray(rng.uniform(1, 4, b), jnp.float32),
        snr_db=jnp.asarray(rng.uniform(15, 30, b), jnp.float32),
        tr=jnp.full(b, 2.0), te=jnp.full(b, 0.04),
        b0_hz=jnp.asarray(rng.uniform(0, 20, b), jnp.float32))
    keys = jax.random.split(jax.random.key(9), b)
    options = dict(motion_states=4, readout_bandwidth_hz_per_px=8.0)
    batched = jax.jit(jax.vmap(lambda k, x, p: sim.corrupt(k, x, p, None, field, maps,
                                                           **options)))(keys, images, params)
    for i in range(b):
        one = sim.corrupt(keys[i], images[i], jax.tree.map(lambda v: v[i], params),
                          field_map=field, coil_maps=maps, **options)
        scale = float(jnp.max(jnp.abs(one.kspace)))
        np.testing.assert_allclose(np.asarray(batched.kspace[i]), np.asarray(one.kspace),
                                   atol=1e-5 * scale)
        np.testing.assert_array_equal(np.asarray(batched.mask[i]), np.asarray(one.mask))


def test_gradients_through_the_coils_match_finite_differences_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(6)
        ny, nx = 12, 16
        x0 = jnp.asarray(smooth_image(ny, nx, np.float64))
        maps = jnp.asarray(sim.coil_maps((ny, nx), n_coils=3, dtype=np.complex128))
        target = jnp.asarray(rng.normal(size=(3, ny, nx)) + 1j * rng.normal(size=(3, ny, nx)))

        def loss(img, amplitude):
            p = sim.CorruptionParams(amplitude, 15.0, 2.0, 25.0, te=0.05, b0_hz=6.0)
            out = sim.corrupt(jax.random.key(1), img, p, coil_maps=maps, motion_states=4)
            return jnp.sum(jnp.abs(out.kspace - target) ** 2) / out.kspace.size

        h = 1e-6
        a0 = jnp.asarray(3.0)
        g_img, g_a = jax.grad(loss, argnums=(0, 1))(x0, a0)
        v = jnp.asarray(rng.normal(size=x0.shape))
        fd = (loss(x0 + h * v, a0) - loss(x0 - h * v, a0)) / (2 * h)
        assert float(jnp.vdot(g_img, v)) == pytest.approx(float(fd), rel=1e-5)
        fd = (loss(x0, a0 + h) - loss(x0, a0 - h)) / (2 * h)
        assert float(g_a) == pytest.approx(float(fd), rel=1e-5)


def test_coil_options_that_cannot_work_name_the_fix():
    x = smooth_image()
    p = sim.CorruptionParams(3.0, 15.0, 2.0, 20.0)
    maps = sim.coil_maps((NY, NX), n_coils=2)
    with pytest.raises(ValueError, match="motion_states"):
        sim.corrupt(jax.random.key(0), x, p, coil_maps=maps)
    with pytest.raises(ValueError, match="coil_maps must be"):
        sim.corrupt(jax.random.key(0), x, p, coil_maps=maps[:, :-1], motion_states=2)
    with pytest.raises(ValueError, match="pass coil_maps"):
        sim.corrupt(jax.random.key(0), x, p, noise_covariance=np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        sim.corrupt(jax.random.key(0), x, p, coil_maps=maps, motion_states=2,
                    noise_covariance=np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        sim.corrupt(jax.random.key(0), x, p, coil_maps=maps, motion_states=2,
                    noise_covariance=np.eye(3))
