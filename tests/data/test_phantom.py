import json

import nibabel as nib
import numpy as np

from kmri_jax.data import discover_volumes, phantom_volume, write_phantom_dataset

SHAPE = (8, 64, 96)


def test_phantom_deterministic_and_varies_by_subject():
    a = phantom_volume(SHAPE, seed=0, subject=0)
    assert a.dtype == np.float32 and a.shape == SHAPE and np.isfinite(a).all()
    np.testing.assert_array_equal(a, phantom_volume(SHAPE, seed=0, subject=0))
    assert not np.allclose(a, phantom_volume(SHAPE, seed=0, subject=1), atol=0.05)
    assert not np.allclose(a, phantom_volume(SHAPE, seed=1, subject=0), atol=0.05)


def test_phantom_anatomy_midline_vs_lateral():
    v = phantom_volume((16, 96, 160), seed=0, subject=2)
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
    root = write_phantom_dataset(tmp_path / "ph", n_subjects=3, shape=SHAPE, seed=4)
    vols = discover_volumes(root)
    assert [v.subject for v in vols] == ["sub-01", "sub-02", "sub-03"]
    assert all(v.timing_from_sidecar and 2.0 <= v.tr <= 3.5 and 0.08 <= v.te <= 0.12
               for v in vols)
    img = nib.load(vols[1].path)
    assert img.shape == SHAPE and np.allclose(img.affine, np.eye(4))
    np.testing.assert_allclose(img.get_fdata(), phantom_volume(SHAPE, seed=4, subject=1),
                               atol=2e-4)
    side = json.loads((root / "sub-02" / "anat" / "sub-02_T2w.json").read_text())
    assert side["RepetitionTime"] == vols[1].tr
    mtime = (root / "sub-01" / "anat" / "sub-01_T2w.nii.gz").stat().st_mtime_ns
    write_phantom_dataset(root, n_subjects=3, shape=SHAPE, seed=4)            # reused as is
    assert (root / "sub-01" / "anat" / "sub-01_T2w.nii.gz").stat().st_mtime_ns == mtime
