"""Cartesian masks: exact line counts, centre block, uniform outer lines, per-sample R."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from kmri_jax import sim


def _reference_counts(n, r, cf=0.08):
    """(centre indices, expected number of acquired lines) from the formula in docs/conventions.md."""
    n_c = max(1, math.floor(n * cf))
    start = n // 2 - n_c // 2
    return np.arange(start, start + n_c), n_c + math.floor((n - n_c) / r)


@pytest.mark.parametrize("n", [16, 32, 48, 424])
@pytest.mark.parametrize("r", [1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 7.3])
def test_line_count_and_centre_block(n, r):
    centre, expected = _reference_counts(n, r)
    for seed in range(3):
        mask = np.asarray(sim.cartesian_mask(jax.random.key(seed), n, acceleration=r))
        assert mask.shape == (n,) and mask.dtype == bool
        assert mask.sum() == expected
        assert mask[centre].all()


def test_centre_fraction_option():
    centre, expected = _reference_counts(50, 4.0, cf=0.2)
    mask = np.asarray(sim.cartesian_mask(jax.random.key(0), 50, acceleration=4.0,
                                         center_fraction=0.2))
    assert mask.sum() == expected and mask[centre].all()


def test_outer_lines_are_uniform_chi_square():
    n, r, draws = 32, 4.0, 4000
    centre, expected = _reference_counts(n, r)
    outer = np.setdiff1d(np.arange(n), centre)
    k = expected - len(centre)
    keys = jax.random.split(jax.random.key(123), draws)
    masks = np.asarray(jax.vmap(lambda key: sim.cartesian_mask(key, n, acceleration=r))(keys))
    counts = masks[:, outer].sum(axis=0)
    m = len(outer)
    p = k / m
    # k-subsets drawn without replacement: Pearson's statistic is (1-p) m/(m-1) chi2(m-1).
    pearson = np.sum((counts - draws * p) ** 2 / (draws * p))
    statistic = pearson * (m - 1) / (m * (1 - p))
    p_value = stats.chi2.sf(statistic, df=m - 1)
    assert p_value > 1e-3, (statistic, p_value)
    # Pairs are uniform too: each pair of outer lines co-occurs with probability k(k-1)/(m(m-1)).
    pair = (masks[:, outer[0]] & masks[:, outer[-1]]).mean()
    assert abs(pair - k * (k - 1) / (m * (m - 1))) < 4 * math.sqrt(pair * (1 - pair) / draws)


def test_per_sample_acceleration_in_one_vmapped_call():
    n = 48
    rs = jnp.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    keys = jax.random.split(jax.random.key(7), rs.shape[0])
    fn = jax.jit(jax.vmap(lambda key, r: sim.cartesian_mask(key, n, acceleration=r)))
    masks = np.asarray(fn(keys, rs))
    for mask, r in zip(masks, np.asarray(rs)):
        centre, expected = _reference_counts(n, float(r))
        assert mask.sum() == expected and mask[centre].all()
