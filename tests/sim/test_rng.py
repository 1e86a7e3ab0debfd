"""The noise's Gaussians: the unrolled Threefry against its published test vectors and
``jax.random``'s primitive, and the complex normal's distribution against scipy."""

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from kmri_jax import sim
from kmri_jax.sim.rng import threefry2x32

# Known-answer vectors of Threefry-2x32-20 from the Random123 distribution (kat_vectors).
KAT = [((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
       ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
       ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]


@pytest.mark.parametrize("key, counter, expected", KAT)
def test_threefry_known_answers(key, counter, expected):
    u32 = [jnp.uint32(v) for v in (*key, *counter)]
    out = threefry2x32((u32[0], u32[1]), u32[2], u32[3])
    assert tuple(int(v) for v in out) == expected


def test_threefry_equals_jax_primitive():
    key = np.asarray([123456789, 987654321], np.uint32)
    x0 = np.arange(1000, dtype=np.uint32) * np.uint32(2654435761)
    x1 = np.arange(1000, dtype=np.uint32)[::-1]
    ref = np.asarray(jax.extend.random.threefry_2x32(key, np.concatenate([x0, x1])))
    out = jax.jit(threefry2x32)((jnp.uint32(key[0]), jnp.uint32(key[1])), x0, x1)
    np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in out]), ref)


@pytest.mark.parametrize("noise_rng", sim.NOISE_RNGS)
def test_complex_normal_distribution(noise_rng):
    """Real and imaginary parts independent N(0, 1/2) (Kolmogorov-Smirnov against scipy's
    normal), |z|^2 exponential with mean 1, uncorrelated neighbours."""
    z = np.asarray(jax.jit(lambda k: sim.complex_normal(k, (256, 256), noise_rng=noise_rng))(
        jax.random.key(3))).ravel()
    assert z.dtype == np.complex64
    for part in (z.real, z.imag):
        assert stats.kstest(part * np.sqrt(2), "norm").pvalue > 1e-3
    assert stats.kstest(np.abs(z) ** 2, "expon").pvalue > 1e-3
    n = z.size
    for moment in (np.mean(z), np.mean(z * z), np.mean(z.real * z.imag), np.mean(z[1:] * z[:-1].conj())):
        assert abs(moment) < 5 / np.sqrt(n)


def test_complex_normal_keys():
    draw = jax.jit(lambda k: sim.complex_normal(k, (4, 8)))
    a, b = jax.random.split(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(draw(a)), np.asarray(draw(a)))
    assert not np.any(np.asarray(draw(a)) == np.asarray(draw(b)))
    batch = jax.vmap(draw)(jnp.stack([a, b]))
    np.testing.assert_array_equal(np.asarray(batch[1]), np.asarray(draw(b)))


def test_jax_sampler_keeps_the_earlier_streams():
    key = jax.random.key(7)
    z_re, z_im = jax.random.normal(key, (2, 6, 10), jnp.float32)
    ref = (np.asarray(z_re) + 1j * np.asarray(z_im)) / np.sqrt(2)
    np.testing.assert_allclose(np.asarray(sim.complex_normal(key, (6, 10), noise_rng="jax")), ref,
                               rtol=1e-6, atol=1e-7)


def test_float64_and_bad_option():
    with jax.enable_x64(True):
        z = sim.complex_normal(jax.random.key(1), (64, 64), jnp.complex128)
        assert z.dtype == jnp.complex128
        assert abs(float(jnp.mean(jnp.abs(z) ** 2)) - 1) < 0.05
    with pytest.raises(ValueError, match="noise_rng must be one of"):
        sim.complex_normal(jax.random.key(1), (4,), noise_rng="rbg")
