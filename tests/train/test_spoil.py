"""estimate_unet's training displacement (train/spoil.py): the true displacement
spoiled as an estimate is, against numpy statements of its definition."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from kmri_jax.train.spoil import spoiled_displacement


def _numpy_centre(d, mask, q=0.1):
    out = np.zeros_like(d)
    for i, (row, m) in enumerate(zip(d, mask)):
        c = 0.5 * (np.quantile(row[m], q) + np.quantile(row[m], 1 - q))
        out[i, m] = row[m] - c
    return out


def _truth(rng, b=400, ny=48, amplitude=4.0):
    t = rng.uniform(0, 2 * np.pi, (b, 1)) + rng.uniform(0, 60, (b, ny))
    d = (amplitude * np.sin(t)).astype(np.float32)
    mask = rng.random((b, ny)) < 0.5
    mask[:, ny // 2 - 2: ny // 2 + 3] = True
    return d, mask


def test_without_spoiling_it_is_the_truth_with_the_estimates_constant():
    d, mask = _truth(np.random.default_rng(0), b=8)
    out = np.asarray(spoiled_displacement(jax.random.key(0), d, mask, keep=0.0, jitter=0.0))
    np.testing.assert_allclose(out, _numpy_centre(d, mask), atol=1e-5)
    assert out.dtype == np.float32 and np.all(out[~mask] == 0)


def test_lines_left_uncorrected_have_the_drawn_fraction():
    """With no jitter each line is either the truth or 0 before one constant per sample; the
    left fraction averages keep / 2 (p ~ U(0, keep))."""
    d, mask = _truth(np.random.default_rng(1))
    out = np.asarray(spoiled_displacement(jax.random.key(1), d, mask, keep=0.4, jitter=0.0))
    left_fractions = []
    for row, true, m in zip(out, d, mask):
        r, t = row[m], true[m]
        # left lines sit at -k, corrected ones at t - k: find k from the corrected majority
        k = np.median(t - r)
        left = np.abs(r + k) < 1e-4
        corrected = np.abs(r - (t - k)) < 1e-4
        assert np.all(left | corrected)
        left_fractions.append(np.mean(left & ~corrected))
    assert np.mean(left_fractions) == pytest.approx(0.2, abs=0.02)
    assert max(left_fractions) <= 0.4 + 0.25  # p <= keep (binomial spread on ~30 lines)


def test_jitter_spread_follows_the_displacement_spread():
    """keep = 0: the error is s * std(d) * N(0, 1) with s ~ U(0, jitter), so
    E[error^2 / std(d)^2] = jitter^2 / 3 (the constant removed per sample)."""
    d, mask = _truth(np.random.default_rng(2))
    out = np.asarray(spoiled_displacement(jax.random.key(2), d, mask, keep=0.0, jitter=0.6))
    ratios = []
    for row, true, m in zip(out, d, mask):
        e = row[m] - true[m]
        ratios.append(np.var(e) / np.var(true[m]))
    assert np.mean(ratios) == pytest.approx(0.6**2 / 3, rel=0.12)
