"""train.augment: random flips against numpy, and the config checks."""

import jax
import numpy as np
import pytest

from kmri_jax.config import ConfigValueError, base_config
from kmri_jax.train.augment import check_augment, random_flips
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
    ({"train.augment": "rot90"}, "train.augment must be one of"),
    ({"train.augment": "flips", "corruption.weight_map": "distance"}, "weight_map/field_map"),
    ({"train.augment": "flips", "corruption.field_map": "lungs"}, "weight_map/field_map"),
])
def test_bad_augment_config_is_one_clear_error(changes, message):
    with pytest.raises(ConfigValueError, match=message):
        check_augment(config_with(changes))
    config = base_config()
    config.train.augment = "flips"
    assert check_augment(config) == "flips"
