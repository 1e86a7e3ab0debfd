"""The corruption grid, its balanced subset and the fixed keys, against their definitions."""

from __future__ import annotations

import dataclasses
import inspect
import itertools

import jax
import numpy as np
import pytest

from kmri_jax import sim


def test_grid_table_is_itertools_product_order():
    table = sim.grid_table()
    expected = np.array(list(itertools.product(*sim.SEED_GRID)), np.float32)
    got = np.stack([table[k] for k in ("A", "f", "R", "SNR")], axis=1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(sim.grid_table([80, 0])["A"], [8.0, 2.0])
    assert sim.num_combinations() == 81


def test_parse_combinations():
    assert sim.parse_combinations("all") == list(range(81))
    assert sim.parse_combinations("orthogonal") == sim.orthogonal_combinations()
    assert sim.parse_combinations(" 3, 5 ") == [3, 5]
    for bad in ("81", "-1", "x", ""):
        with pytest.raises(ValueError, match="0..80"):
            sim.parse_combinations(bad)


def test_sample_keys_are_the_nested_fold_ins():
    root = jax.random.key(7)
    volume, slice_, combo = np.array([0, 3]), np.array([5, 1]), np.array([80, 2])
    got = jax.random.key_data(sim.sample_keys(root, volume, slice_, combo))
    for i in range(2):
        k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, int(volume[i])),
                                                  int(slice_[i])), int(combo[i]))
        np.testing.assert_array_equal(got[i], jax.random.key_data(k))
    single = jax.random.key_data(sim.sample_keys(root, 3, np.array([1])))[0]
    np.testing.assert_array_equal(
        single, jax.random.key_data(jax.random.fold_in(jax.random.fold_in(root, 3), 1)))


def test_corrupt_options_are_corrupts_keyword_options():
    """One place for the simulator's static options: the dataclass mirrors corrupt()."""
    params = inspect.signature(sim.corrupt).parameters.values()
    keyword = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    assert dataclasses.asdict(sim.CorruptOptions()) == keyword
    assert sim.CorruptOptions(method="sinusoidal").kwargs()["method"] == "sinusoidal"
    hash(sim.CorruptOptions())  # static: usable as a jit / lru_cache key
