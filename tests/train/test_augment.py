"""train.augment: random flips against numpy, zoom against scipy, and the config checks."""

import jax
import numpy as np
import pytest

from kmri_jax.config import ConfigValueError, base_config
from scipy import ndimage

from kmri_jax.train.augment import (MAX_GAMMA, MAX_ZOOM, check_augment, random_flips,
                                    random_gamma, random_zoom)
from tiny_run import config_with


def test_random_flips_are_numpy_flips_of_each_slice():
    rng = np.random.default_rng(0)
    images = rng.random((64, 5, 7)).astype(np.float32)
    out = np.asarray(random_flips(jax.random.key(3), images))
    seen = set()
    for x, y in zip(images, out):
        options = {(r, c): np.flip(np.flip(x, 0) if r else x, 1) if c else (np.flip(x, 0) if r
                                                                             else x)
                   for r in (0, 1) for c in (0, 1)}
        match = [k for k, v in options.items() if np.array_equal(v, y)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}          # every flip occurs in 64 draws
    again = np.asarray(random_flips(jax.random.key(3), images))
    np.testing.assert_array_equal(out, again)                # keyed: a resumed run repeats it


@pytest.mark.parametrize("changes, message", [
    ({"train.augment": "rot90"}, "comma-separated list"),
    ({"train.augment": "flips,shear"}, "comma-separated list"),
    ({"train.augment": "flips", "corruption.weight_map": "distance"}, "weight_map/field_map"),
    ({"train.augment": "flips", "corruption.field_map": "lungs"}, "weight_map/field_map"),
])
def test_bad_augment_config_is_one_clear_error(changes, message):
    with pytest.raises(ConfigValueError, match=message):
        check_augment(config_with(changes))
    assert check_augment(config_with({"train.augment": "flips, zoom"})) == ("flips", "zoom")
    assert check_augment(base_config()) == ()


def test_random_zoom_is_bilinear_magnification_of_a_window_inside_the_slice():
    """Against scipy's order-1 interpolation at the stated coordinates (half-centred pixels:
    output pixel o reads input c + (o + 0.5) / z - 0.5), away from the one-pixel border."""
    rng = np.random.default_rng(1)
    images = ndimage.gaussian_filter(rng.random((16, 24, 32)), (0, 2, 2)).astype(np.float32)
    key = jax.random.key(5)
    out = np.asarray(random_zoom(key, images))
    k_zoom, k_corner = jax.random.split(key)
    zoom = np.asarray(jax.random.uniform(k_zoom, (16,), np.float32, 1.0, MAX_ZOOM))
    corner = np.asarray(jax.random.uniform(k_corner, (16, 2), np.float32)) \
        * np.array([24, 32]) * (1 - 1 / zoom[:, None])
    assert (zoom >= 1).all() and (zoom <= MAX_ZOOM).all() and zoom.std() > 0.1
    for x, y, z, c in zip(images, out, zoom, corner):
        rows = c[0] + (np.arange(24) + 0.5) / z - 0.5
        cols = c[1] + (np.arange(32) + 0.5) / z - 0.5
        ref = ndimage.map_coordinates(x, np.meshgrid(rows, cols, indexing="ij"), order=1,
                                      mode="nearest")
        np.testing.assert_allclose(y[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-5)
        assert rows.min() >= -0.5 and rows.max() <= 23.5 and cols.max() <= 31.5


def test_random_gamma_is_a_power_of_the_normalised_slice():
    rng = np.random.default_rng(2)
    images = (rng.random((32, 6, 7)) * rng.uniform(0.5, 3, (32, 1, 1))).astype(np.float32)
    out = np.asarray(random_gamma(jax.random.key(1), images))
    for x, y in zip(images, out):
        m = x.max()
        g = np.log(y.flat[np.argmin(np.abs(x - 0.5 * m))] / m) / np.log(
            x.flat[np.argmin(np.abs(x - 0.5 * m))] / m)
        assert 1 / MAX_GAMMA - 1e-3 <= g <= MAX_GAMMA + 1e-3
        np.testing.assert_allclose(y, m * (x / m) ** g, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(random_gamma(jax.random.key(1), np.zeros((2, 3, 3), np.float32))) == 0)
