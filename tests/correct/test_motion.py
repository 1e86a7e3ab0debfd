"""Motion correction: the inverse ramp and the oracle against numpy, and the training-free
estimator on simulated slices (recovery per amplitude, not zeros, jit/vmap == eager)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax import correct, sim
from kmri_jax.correct.focus import focus_rows, to_focus_rows

NY, NX = 64, 96
AMPLITUDES = (2.0, 5.0, 8.0)
# Displacement RMS errors (px, acquired lines, after the best constant) the estimator must beat
# on the test slices below (R = 2, SNR 25 dB). Energy-weighted (weight = clean line energy, the
# lines that shape the image; measured 0.02 / 0.07 / 0.19 px, zeros 1.2 / 1.5 / 2.7 px) and
# unweighted (lines near the noise level included; measured 0.06 / 1.4 / 3.1 px, zeros
# 1.1 / 2.6 / 5.0 px).
MAX_WRMS = {2.0: 0.15, 5.0: 0.3, 8.0: 0.6}
MAX_RMS = {2.0: 0.5, 5.0: 2.0, 8.0: 4.0}


def _ramp_ref(nx, d):
    u = np.fft.fftshift(np.fft.fftfreq(nx))
    return np.exp(2j * np.pi * np.asarray(d, np.float64)[..., :, None] * u)


def _test_image(seed: int, ny: int = NY, nx: int = NX) -> np.ndarray:
    """A non-negative, non-periodic test object: smooth blobs and a few sharp-edged blocks in
    an elliptical support, background zero."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    img = np.zeros((ny, nx))
    for _ in range(8):
        cy, cx = rng.uniform(0.25, 0.75) * ny, rng.uniform(0.2, 0.8) * nx
        sy, sx = rng.uniform(2, 8), rng.uniform(2, 12)
        img += rng.uniform(0.2, 1.0) * np.exp(-0.5 * (((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2))
    for _ in range(4):
        y0, x0 = int(rng.uniform(0.3, 0.6) * ny), int(rng.uniform(0.25, 0.7) * nx)
        img[y0:y0 + int(rng.integers(3, 8)), x0:x0 + int(rng.integers(3, 12))] += rng.uniform(0.3, 0.8)
    support = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.42 * nx)) ** 2 <= 1.0
    img = (img + 0.3) * support
    return (img / img.max()).astype(np.float32)


def _rms_after_best_constant(est, true, mask, weight=None):
    m = np.asarray(mask)
    e = (np.asarray(est, np.float64) - np.asarray(true, np.float64))[m]
    w = np.ones_like(e) if weight is None else np.asarray(weight, np.float64)[m]
    c = np.sum(w * e) / np.sum(w)
    return float(np.sqrt(np.sum(w * (e - c) ** 2) / np.sum(w)))


@functools.lru_cache(maxsize=1)
def _cases():
    """Three slices, one per amplitude (R = 2, SNR 25 dB, 15 breaths/min), batched."""
    images = jnp.asarray(np.stack([_test_image(s) for s in range(3)]))
    params = sim.CorruptionParams(
        amplitude_px=jnp.asarray(AMPLITUDES, jnp.float32),
        rate_bpm=jnp.full((3,), 15.0), acceleration=jnp.full((3,), 2.0),
        snr_db=jnp.full((3,), 25.0), tr=jnp.asarray([1.7, 2.1, 2.5]), te=jnp.full((3,), 0.03),
    )
    keys = jax.random.split(jax.random.key(7), 3)
    return jax.jit(jax.vmap(sim.corrupt))(keys, images, params)


@functools.lru_cache(maxsize=1)
def _batched_estimate():
    out = _cases()
    return np.asarray(jax.jit(jax.vmap(correct.estimate_motion))(out.kspace, out.mask))


def test_undo_inverts_apply_and_matches_numpy_ramp():
    rng = np.random.default_rng(0)
    k = (rng.normal(size=(2, 16, 24)) + 1j * rng.normal(size=(2, 16, 24))).astype(np.complex64)
    d = rng.uniform(-10, 10, size=(2, 16)).astype(np.float32)
    back = np.asarray(correct.undo_motion(sim.apply_motion(jnp.asarray(k), jnp.asarray(d)), d))
    assert np.max(np.abs(back - k)) <= 1e-6 * np.max(np.abs(k)) * 10  # float32 ramps
    assert np.linalg.norm(back - k) / np.linalg.norm(k) <= 1e-6
    undone = np.asarray(correct.undo_motion(jnp.asarray(k), jnp.asarray(d)))
    ref = k.astype(np.complex128) * _ramp_ref(24, d)
    assert undone.dtype == np.complex64
    assert np.linalg.norm(undone - ref) / np.linalg.norm(ref) <= 1e-5


def test_oracle_matches_numpy_conjugate_ramp():
    out = _cases()
    got = np.asarray(correct.oracle(out))
    k = np.asarray(out.kspace).astype(np.complex128)
    ref = k * _ramp_ref(NX, np.asarray(out.displacement))
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5
    # undoing the true motion of a noise-free line gives the clean line back
    clean_moved = sim.apply_motion(out.clean, out.displacement)
    back = np.asarray(correct.undo_motion(clean_moved, out.displacement))
    np.testing.assert_allclose(back, np.asarray(out.clean), rtol=0, atol=1e-4 * np.abs(back).max())


def test_oracle_undoes_the_phase_encode_translation_too():
    x = np.random.default_rng(11).random((16, 24)).astype(np.float32)
    p = sim.CorruptionParams(4.0, 15.0, 1.0, 300.0, amplitude_pe_px=3.0)  # noise ~1e-15
    out = sim.corrupt(jax.random.key(5), jnp.asarray(x), p)
    assert float(jnp.max(jnp.abs(out.displacement_pe))) > 1.0
    got = np.asarray(correct.oracle(out))
    clean = np.asarray(out.clean)
    np.testing.assert_allclose(got, clean, rtol=0, atol=1e-4 * np.abs(clean).max())


@pytest.mark.parametrize("index", range(len(AMPLITUDES)))
def test_estimate_recovers_displacement(index):
    out = _cases()
    a = AMPLITUDES[index]
    est = _batched_estimate()[index]
    mask = np.asarray(out.mask[index])
    true = np.asarray(out.displacement[index])
    energy = np.sum(np.abs(np.asarray(out.clean[index])) ** 2, -1)
    wrms = _rms_after_best_constant(est, true, mask, energy)
    wrms_zeros = _rms_after_best_constant(np.zeros_like(true), true, mask, energy)
    rms = _rms_after_best_constant(est, true, mask)
    rms_zeros = _rms_after_best_constant(np.zeros_like(true), true, mask)
    assert wrms <= MAX_WRMS[a], (a, wrms)
    assert rms <= MAX_RMS[a], (a, rms)
    # returning zeros (or any constant) fails both
    assert wrms <= 0.25 * wrms_zeros and rms <= 0.8 * rms_zeros, (a, wrms, wrms_zeros, rms, rms_zeros)
    # convention: the mid-point of the 10% and 90% quantiles over the acquired lines is zero
    assert abs(np.quantile(est[mask], 0.1) + np.quantile(est[mask], 0.9)) < 2e-4
    assert np.all(est[~mask] == 0)


def test_centre_displacement_matches_numpy_quantiles():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(4, 40)).astype(np.float32) * 3 + 1.5
    mask = rng.random((4, 40)) < 0.4
    mask[3] = False                                  # no acquired line: all zeros
    for q in (0.0, 0.1, 0.25):
        got = np.asarray(correct.centre_displacement(d, mask, quantile=q))
        for row, m, g in zip(d, mask, got):
            assert np.all(g[~m] == 0)
            if m.any():
                ref = row[m] - 0.5 * (np.quantile(row[m], q) + np.quantile(row[m], 1 - q))
                np.testing.assert_allclose(g[m], ref, rtol=0, atol=1e-5)
    # one slice at a time (the estimator's case) equals the batched call
    one = np.asarray(correct.centre_displacement(d[0], mask[0]))
    np.testing.assert_allclose(one, np.asarray(correct.centre_displacement(d, mask))[0], atol=1e-6)
    with pytest.raises(ValueError, match="quantile"):
        correct.centre_displacement(d, mask, quantile=0.7)


def test_centre_displacement_beats_the_mean_on_a_breathing_excursion():
    """Samples of an oscillation about its rest level crowd at the turning points: the
    quantiles' mid-point finds the rest level closer than the mean (numpy reference)."""
    rng = np.random.default_rng(5)
    phases = rng.uniform(0, 2 * np.pi, size=(400, 20))
    d = (4.0 * np.sin(phases)).astype(np.float32)   # rest level 0
    mask = np.ones_like(d, bool)
    offset_mid = d[:, 0] - np.asarray(correct.centre_displacement(d, mask))[:, 0]
    offset_mean = d.mean(1)
    assert np.sqrt(np.mean(offset_mid ** 2)) < 0.8 * np.sqrt(np.mean(offset_mean ** 2))


def test_range_guard_moves_only_strong_units_outside_the_widened_range():
    """numpy reference of the rule: a strong unit whose mean line displacement lies beyond
    the other lines' range widened by margin * range moves to the nearest end of it."""
    from kmri_jax.correct import units

    ny = 12
    mask = np.ones(ny, bool)
    mask[[3, 7]] = False
    unit = np.arange(ny)
    unit[10] = 1                                   # a pair: lines 1 and 10 share unit 1
    offset = np.zeros(ny, np.float32)
    offset[1], offset[10] = 0.5, -0.5
    rank = np.full(ny, ny - 1)                     # strongest units: 1 (rank 0), 4 (rank 1)
    rank[1], rank[4] = 0, 1
    p = np.linspace(-1.0, 1.0, ny).astype(np.float32)
    p[1], p[4] = 9.0, 0.3                          # unit 1 far out, unit 4 inside
    got = np.asarray(units.clip_strongest_to_range(
        jnp.asarray(p), jnp.asarray(mask), jnp.asarray(unit), jnp.asarray(offset),
        jnp.asarray(rank), n_strongest=2, margin=0.5))
    d = p[unit] + offset
    other = mask & ~np.isin(unit, [1, 4])
    lo, hi = d[other].min(), d[other].max()
    top = hi + 0.5 * (hi - lo)
    want = p.copy()
    want[1] = p[1] + (top - np.mean(d[[1, 10]]))   # the pair's mean moves to the top end
    np.testing.assert_allclose(got, want, atol=1e-6)
    # fewer than two other lines: nothing moves
    few = np.zeros(ny, bool)
    few[[1, 10, 4, 0]] = True
    same = np.asarray(units.clip_strongest_to_range(
        jnp.asarray(p), jnp.asarray(few), jnp.asarray(unit), jnp.asarray(offset),
        jnp.asarray(rank), n_strongest=2, margin=0.5))
    np.testing.assert_array_equal(same, p)


def test_estimate_improves_ssim_like_error():
    """The corrected zero-filled image is closer to the oracle's than the input is."""
    out = _cases()
    est = jnp.asarray(_batched_estimate())
    ref = jnp.abs(sim.kspace_to_image(correct.oracle(out)))
    err_in = jnp.linalg.norm(jnp.abs(sim.kspace_to_image(out.kspace)) - ref, axis=(-2, -1))
    # the estimate is defined up to a constant: compare with the best-constant version
    mask = np.asarray(out.mask)
    c = np.asarray([(np.asarray(est[i]) - np.asarray(out.displacement[i]))[mask[i]].mean()
                    for i in range(3)])
    fixed = correct.undo_motion(out.kspace, est - jnp.asarray(c)[:, None] * mask)
    err_est = jnp.linalg.norm(jnp.abs(sim.kspace_to_image(fixed)) - ref, axis=(-2, -1))
    assert np.all(np.asarray(err_est) < 0.5 * np.asarray(err_in))


def test_a_band_of_rows_images_the_full_image_on_fewer_rows():
    """The autofocus images of a tall slice are made of a centred band of k-space rows: for
    lines inside the band that is the full image (numpy) sampled every ny / rows rows."""
    ny, nx = 256, 24
    rows = focus_rows(correct.motion.default_n_focus(ny))
    assert rows < ny and ny % rows == 0
    rng = np.random.default_rng(0)
    k = np.zeros((ny, nx), np.complex64)
    inside = slice(ny // 2 - rows // 2 + 1, ny // 2 + rows // 2)    # both edges left empty
    k[inside] = rng.standard_normal((rows - 1, nx)) + 1j * rng.standard_normal((rows - 1, nx))
    full = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k))))[:: ny // rows]
    got = np.abs(np.fft.fftshift(np.asarray(sim.kspace_to_image(to_focus_rows(jnp.asarray(k),
                                                                             rows)))))
    np.testing.assert_allclose(got / np.linalg.norm(got), full / np.linalg.norm(full),
                               atol=1e-6)


def test_zero_rows_image_a_short_slice_between_its_rows():
    """A short slice's autofocus image (zero rows added) is its band-limited image at
    ny / rows px steps: checked against the explicit inverse DFT at those positions."""
    ny, nx = 64, 8
    rows = focus_rows(correct.motion.default_n_focus(ny))
    assert rows == 2 * ny
    rng = np.random.default_rng(1)
    k = np.zeros((ny, nx), np.complex64)
    k[1:] = rng.standard_normal((ny - 1, nx)) + 1j * rng.standard_normal((ny - 1, nx))
    ky = np.arange(ny) - ny // 2                        # row ky = -ny/2 left empty above
    y = np.arange(rows) * ny / rows                      # positions in the slice's pixels
    cols = np.fft.ifft(np.fft.ifftshift(k, axes=1), axis=1)          # [ny, nx] over x
    ref = np.abs(np.exp(2j * np.pi * np.outer(y, ky) / ny) @ cols)   # [rows, nx]
    got = np.abs(np.asarray(sim.kspace_to_image(to_focus_rows(jnp.asarray(k), rows))))
    np.testing.assert_allclose(got / np.linalg.norm(got), ref / np.linalg.norm(ref),
                               atol=1e-6)


def test_estimate_recovers_displacement_on_a_tall_slice():
    """A slice taller than the autofocus band (256 rows, band 128): recovered as well as the
    64-row slices above are at the same amplitude."""
    ny, nx, a = 256, 48, 5.0
    assert focus_rows(correct.motion.default_n_focus(ny)) < ny
    params = sim.CorruptionParams(
        amplitude_px=jnp.asarray(a), rate_bpm=jnp.asarray(15.0), acceleration=jnp.asarray(2.0),
        snr_db=jnp.asarray(25.0), tr=jnp.asarray(2.1), te=jnp.asarray(0.03))
    out = jax.jit(sim.corrupt)(jax.random.key(3), jnp.asarray(_test_image(5, ny, nx)), params)
    mask, true = np.asarray(out.mask), np.asarray(out.displacement)
    # the autofocus stage alone (the band's job) places the fully sampled centre lines
    centre = mask & (np.abs(np.arange(ny) - ny // 2) <= correct.motion.default_n_focus(ny))
    focus = np.asarray(correct.estimate_motion(out.kspace, out.mask, n_outer=0))
    rms = _rms_after_best_constant(focus, true, centre)
    rms_zeros = _rms_after_best_constant(np.zeros_like(true), true, centre)
    assert rms <= 0.3 and rms <= 0.2 * rms_zeros, (rms, rms_zeros)
    est = np.asarray(correct.estimate_motion(out.kspace, out.mask, n_outer=8))
    energy = np.sum(np.abs(np.asarray(out.clean)) ** 2, -1)
    wrms = _rms_after_best_constant(est, true, mask, energy)
    wrms_zeros = _rms_after_best_constant(np.zeros_like(true), true, mask, energy)
    assert wrms <= MAX_WRMS[a] and wrms <= 0.25 * wrms_zeros, (wrms, wrms_zeros)


def test_jit_and_vmap_match_eager():
    out = _cases()
    eager = np.asarray(correct.estimate_motion(out.kspace[0], out.mask[0]))
    jitted = np.asarray(jax.jit(correct.estimate_motion)(out.kspace[0], out.mask[0]))
    batched = _batched_estimate()[0]
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    np.testing.assert_allclose(batched, eager, atol=1e-2)


def test_line_groups_share_one_displacement():
    out = _cases()
    groups = jnp.arange(NY) // 2                          # pairs of consecutive lines
    mask = out.mask[1] | (out.mask[1][jnp.arange(NY) ^ 1])   # acquire both lines of a group
    k = jnp.where(mask[:, None], sim.apply_motion(out.clean[1], out.displacement[1][groups * 2]), 0)
    est = np.asarray(correct.estimate_motion(k, mask, line_groups=groups, n_outer=4))
    m = np.asarray(mask)
    pairs = est.reshape(-1, 2)
    both = m.reshape(-1, 2).all(1)
    np.testing.assert_allclose(pairs[both, 0], pairs[both, 1], atol=1e-6)


def test_input_checks():
    k = jnp.zeros((NY, NX), jnp.complex64)
    with pytest.raises(ValueError, match="vmap"):
        correct.estimate_motion(k[None], jnp.ones((1, NY), bool))
    with pytest.raises(ValueError, match="mask"):
        correct.estimate_motion(k, jnp.ones((NY + 1,), bool))
    with pytest.raises(ValueError, match="focus_criterion"):
        correct.estimate_motion(k, jnp.ones((NY,), bool), focus_criterion="nope")
    with pytest.raises(ValueError, match="range_margin"):
        correct.estimate_motion(k, jnp.ones((NY,), bool), range_margin=-1.0)


def test_the_configs_search_options_are_the_functions_defaults():
    """config.correct exposes estimate_motion's options for --config.correct.KEY overrides;
    each default there is the function's own, so a run without overrides is the plain call."""
    import inspect

    from kmri_jax.config import base_config

    defaults = {name: p.default for name, p in
                inspect.signature(correct.estimate_motion).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    options = dict(base_config().correct)
    assert options and set(options) <= set(defaults)
    for name, value in options.items():
        assert value == defaults[name] and type(value) is type(defaults[name]), name
