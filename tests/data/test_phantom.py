import json

import nibabel as nib
import numpy as np
import pytest

from kmri_jax.data import discover_volumes, phantom_volume, write_phantom_dataset
from kmri_jax.data.phantom.texture import band_limited_field
from kmri_jax.data.phantom.whole_spine import (FOV_AP_MM, FOV_SI_MM, SLAB_MM, TISSUES,
                                               whole_spine_volume)

SHAPE = (8, 64, 96)


@pytest.mark.parametrize("version", [1, 2])
def test_phantom_deterministic_and_varies_by_subject(version):
    a = phantom_volume(SHAPE, seed=0, subject=0, version=version)
    assert a.dtype == np.float32 and a.shape == SHAPE and np.isfinite(a).all()
    np.testing.assert_array_equal(a, phantom_volume(SHAPE, seed=0, subject=0, version=version))
    assert not np.allclose(a, phantom_volume(SHAPE, seed=0, subject=1, version=version),
                           atol=0.05)
    assert not np.allclose(a, phantom_volume(SHAPE, seed=1, subject=0, version=version),
                           atol=0.05)


def test_blocky_phantom_anatomy_midline_vs_lateral():
    v = phantom_volume((16, 96, 160), seed=0, subject=2, version=1)
    mid, lateral = v[8], v[0]
    # Midline: bright CSF (the brightest tissue) runs along the whole spine (every column).
    assert (mid.max(axis=0) > 0.8).mean() > 0.9
    # Lateral edge: no canal, so no CSF-bright voxels; body still there.
    assert (lateral > 0.8).mean() < 0.002 and (lateral > 0.15).mean() > 0.2
    # Background (outside the body) is dark: noise only.
    assert np.median(mid[:2]) < 0.1
    # Bright discs alternate with darker vertebral bodies along the spine: some row crosses
    # several separate bright runs.
    bright = mid > 0.6
    rises = (bright[:, 1:] & ~bright[:, :-1]).sum(axis=1)
    assert rises.max() >= 4


def test_phantom_dataset_is_bids_with_sidecars(tmp_path):
    root = write_phantom_dataset(tmp_path / "ph", n_subjects=3, shape=SHAPE, seed=4, version=1)
    vols = discover_volumes(root)
    assert [v.subject for v in vols] == ["sub-01", "sub-02", "sub-03"]
    assert all(v.timing_from_sidecar and 2.0 <= v.tr <= 3.5 and 0.08 <= v.te <= 0.12
               for v in vols)
    img = nib.load(vols[1].path)
    assert img.shape == SHAPE and np.allclose(img.affine, np.eye(4))
    np.testing.assert_allclose(img.get_fdata(),
                               phantom_volume(SHAPE, seed=4, subject=1, version=1), atol=2e-4)
    side = json.loads((root / "sub-02" / "anat" / "sub-02_T2w.json").read_text())
    assert side["RepetitionTime"] == vols[1].tr
    mtime = (root / "sub-01" / "anat" / "sub-01_T2w.nii.gz").stat().st_mtime_ns
    write_phantom_dataset(root, n_subjects=3, shape=SHAPE, seed=4, version=1)  # reused as is
    assert (root / "sub-01" / "anat" / "sub-01_T2w.nii.gz").stat().st_mtime_ns == mtime


def test_phantom_version_is_checked(tmp_path):
    with pytest.raises(ValueError, match="phantom_version"):
        phantom_volume(SHAPE, seed=0, subject=0, version=3)


def test_whole_spine_dataset_records_voxel_size_and_landmarks(tmp_path):
    root = write_phantom_dataset(tmp_path / "ph", n_subjects=2, shape=SHAPE, seed=1)
    img = nib.load(root / "sub-02" / "anat" / "sub-02_T2w.nii.gz")
    _, info = whole_spine_volume(SHAPE, seed=1, subject=1)
    np.testing.assert_allclose(np.diag(img.affine)[:3], info["spacing_mm"], rtol=1e-6)
    # The field of view the docstring states: SI and AP extent whatever the shape.
    np.testing.assert_allclose(np.array(SHAPE) * np.diag(img.affine)[:3],
                               [SLAB_MM, FOV_AP_MM, FOV_SI_MM], rtol=1e-6)
    side = json.loads((root / "sub-02" / "anat" / "sub-02_T2w.json").read_text())
    marks = side["PhantomLandmarks"]
    assert 0 < marks["L5_S1"] < marks["conus"] < marks["T12_L1"] < marks["diaphragm_recess"] \
        < marks["diaphragm_dome"] < marks["C7_T1"] < marks["lung_apex"] < 1


def test_band_limited_field_has_the_stated_autocorrelation():
    """Empirical autocorrelation (numpy, periodic) against exp(-(r / (2 sigma))^2)."""
    rng = np.random.default_rng(0)
    sigma = 3.0
    f = band_limited_field(rng, (256, 256), sigma_px=(sigma, sigma))
    assert abs(f.mean()) < 1e-6 and abs(f.std() - 1) < 1e-5
    spectrum = np.abs(np.fft.fft2(f)) ** 2
    acf = np.real(np.fft.ifft2(spectrum)) / f.size
    for r in (0, 2, 4, 6, 9):
        assert abs(acf[0, r] - np.exp(-(r / (2 * sigma)) ** 2)) < 0.08, r
        assert abs(acf[r, 0] - np.exp(-(r / (2 * sigma)) ** 2)) < 0.08, r


def test_whole_spine_partial_volume_converges_to_area_fractions():
    """Pixels average the tissue contrasts over their area: the default 3x supersampled
    rendering is close to a 9x one (a better estimate of the exact fractions) and far closer
    than point sampling, and edges take intermediate values."""
    shape = (1, 64, 96)
    render = lambda ss: whole_spine_volume(shape, seed=3, subject=0, texture=False,  # noqa
                                           bias=False, noise=False, supersample=ss)[0]
    fine, default, point = render(9), render(3), render(1)
    err_default, err_point = np.abs(default - fine).mean(), np.abs(point - fine).mean()
    assert err_default < 0.3 * err_point
    assert len(np.unique(point)) <= len(TISSUES)          # point sampling: tissue values only
    assert len(np.unique(default)) > 20 * len(TISSUES)


def _layers_off(shape, subject=0):
    return whole_spine_volume(shape, seed=5, subject=subject, texture=False, bias=False,
                              noise=False)


def test_whole_spine_curvature_follows_the_csf():
    """The CSF (the brightest tissue) of the midline slice: thoracic kyphosis (its middle lies
    posterior to the chord between the junctions), cervical and lumbar lordosis (anterior)."""
    shape = (3, 160, 368)
    for subject in range(3):
        vol, info = _layers_off(shape, subject)
        mid = vol[1]
        rows = np.arange(shape[1], dtype=np.float64)[:, None]
        csf = mid >= 0.97 * mid.max()
        has = csf.sum(0) > 0
        centre = np.where(has, (csf * rows).sum(0) / np.maximum(csf.sum(0), 1), np.nan)
        col = lambda f: int(round(f * shape[2]))  # noqa: E731

        def sag(lo: float, hi: float) -> float:
            a, b = col(lo), col(hi)
            m = (a + b) // 2
            window = lambda c: np.nanmean(centre[c - 3:c + 4])  # noqa: E731
            return window(m) - (window(a) + window(b)) / 2   # > 0: the middle is anterior

        assert sag(info["T12_L1"], info["C7_T1"]) < -2, subject           # kyphosis
        assert sag(info["L5_S1"], info["T12_L1"]) > 2, subject            # lordosis
        top = info["C7_T1"] + 0.6 * (1 - info["C7_T1"])
        assert sag(info["C7_T1"] + 0.02, top) > 0.5, subject              # cervical lordosis


def test_whole_spine_lungs_lie_between_the_landmarks():
    """Dark tissue inside the body of a lateral slice (lungs; no aorta on this side) is found
    between the diaphragm's recess and the lungs' apex, and fills the columns above the dome."""
    shape = (8, 160, 368)
    vol, info = _layers_off(shape, subject=1)
    lateral = vol[-1]                                  # x = +26 mm: right of the aorta
    body = np.maximum.accumulate(lateral > 0.1, axis=0) \
        & np.maximum.accumulate((lateral > 0.1)[::-1], axis=0)[::-1]
    dark = ((lateral < 0.08) & body).sum(0) / np.maximum(body.sum(0), 1)
    cols = (np.arange(shape[2]) + 0.5) / shape[2]
    assert (dark[(cols < info["diaphragm_recess"] - 0.03) | (cols > info["lung_apex"] + 0.03)]
            < 0.05).all()
    assert (dark[(cols > info["diaphragm_dome"] + 0.03) & (cols < info["lung_apex"] - 0.05)]
            > 0.15).all()
