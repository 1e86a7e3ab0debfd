"""Bad input fails at the Python boundary with a clear ValueError; tracers skip value checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import sim

GOOD = sim.CorruptionParams(amplitude_px=5.0, rate_bpm=15.0, acceleration=4.0, snr_db=20.0)
IMAGE = np.ones((16, 24), np.float32)
KEY = jax.random.key(0)


@pytest.mark.parametrize("shape", [(24,), (2, 16, 24), (1, 1, 16, 24)])
def test_wrong_rank_raises_also_under_jit(shape):
    image = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match=r"\[ny, nx\]"):
        sim.corrupt(KEY, image, GOOD)
    with pytest.raises(ValueError, match=r"\[ny, nx\]"):  # shapes are static: checked in jit too
        jax.jit(sim.corrupt)(KEY, image, GOOD)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_image_raises(bad):
    image = IMAGE.copy()
    image[3, 4] = bad
    with pytest.raises(ValueError, match="non-finite"):
        sim.corrupt(KEY, image, GOOD)
    with pytest.raises(ValueError, match="non-finite"):
        sim.check_inputs(np.stack([IMAGE, image]), GOOD)


@pytest.mark.parametrize("r", [0.5, 0.0, -2.0, np.nan])
def test_acceleration_below_one_raises(r):
    with pytest.raises(ValueError, match="acceleration"):
        sim.corrupt(KEY, IMAGE, GOOD._replace(acceleration=r))
    with pytest.raises(ValueError, match="acceleration"):
        sim.cartesian_mask(KEY, 16, acceleration=r)


@pytest.mark.parametrize("snr", [np.nan, np.inf, -np.inf])
def test_non_finite_snr_raises(snr):
    with pytest.raises(ValueError, match="snr_db"):
        sim.corrupt(KEY, IMAGE, GOOD._replace(snr_db=snr))
    with pytest.raises(ValueError, match="snr_db"):
        sim.add_noise(KEY, jnp.ones((16, 24), jnp.complex64), jnp.ones(16, bool), snr_db=snr)


def test_check_inputs_batch():
    images = np.ones((3, 16, 24), np.float32)
    params = sim.sample_params(KEY, 3)
    sim.check_inputs(images, params)  # fine
    with pytest.raises(ValueError, match="batch has 3"):
        sim.check_inputs(images, sim.sample_params(KEY, 4))
    with pytest.raises(ValueError, match="acceleration"):
        sim.check_inputs(images, params._replace(acceleration=jnp.array([2.0, 0.5, 4.0])))
    with pytest.raises(ValueError, match="scalar"):
        sim.check_inputs(IMAGE, params)
    with pytest.raises(ValueError, match="rate_bpm"):
        sim.check_inputs(IMAGE, GOOD._replace(rate_bpm=0.0))


def test_value_checks_run_on_host_and_are_skipped_under_jit():
    """Value errors come from Python checks on concrete data (ValueError, before any XLA
    call); inside jit the inputs are tracers, so the checks step aside instead of forcing a
    host sync. Callers validate at the host boundary with check_inputs."""
    image = IMAGE.copy()
    image[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        sim.check_inputs(image, GOOD)
    out = jax.jit(lambda k, x, p: sim.corrupt(k, x, p, method="sinusoidal"))(KEY, image, GOOD)
    assert out.kspace.shape == (16, 24)
