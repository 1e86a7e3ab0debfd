import numpy as np
import pytest

from kmri_jax.data import DataError, PreprocessOptions, load_volume, preprocess_volume
from nifti_data import random_volume, write_nifti


def reference_slices(vol, *, axis=0, ny, nx, blank=0):
    """The seed's steps written out plainly (per volume: clip at p99.5, rescale p2..p99 to
    [0, 1]; per slice: blank rows, centre-crop / pad bottom-right)."""
    v = np.array(vol, dtype=np.float64)
    cap = np.percentile(v, 99.5)
    v[v > cap] = cap
    p2, p99 = np.percentile(v, 2), np.percentile(v, 99)
    v = (v - p2) / (p99 - p2)
    v[v < 0] = 0
    v[v > 1] = 1
    out = []
    for i in range(v.shape[axis]):
        s = np.take(v, i, axis=axis).copy()
        h, w = s.shape
        if blank:
            s[:blank] = 0
            s[h - blank:] = 0
        img = np.zeros((ny, nx))
        top = (h - ny) // 2 if h > ny else 0
        left = (w - nx) // 2 if w > nx else 0
        for r in range(min(h, ny)):
            for c in range(min(w, nx)):
                img[r, c] = s[top + r, left + c]
        out.append(img)
    return np.array(out), (min(h, ny), min(w, nx))


@pytest.mark.parametrize("ny,nx,axis,blank", [(40, 48, 0, 0), (64, 64, 0, 12), (32, 40, 0, 0),
                                              (48, 36, 1, 3), (30, 60, 2, 0)])
def test_preprocessing_matches_numpy_reference(ny, nx, axis, blank):
    vol = random_volume(1)
    got = preprocess_volume(vol, PreprocessOptions(ny=ny, nx=nx, axis=axis, blank_rows=blank,
                                                   min_size=8))
    want, valid = reference_slices(vol, axis=axis, ny=ny, nx=nx, blank=blank)
    assert got.images.dtype == np.float32 and got.images.shape == want.shape
    assert got.valid_shape == valid
    np.testing.assert_allclose(got.images, want, atol=2e-7)
    assert got.images.min() >= 0 and got.images.max() == 1
    np.testing.assert_array_equal(got.slice_indices, np.arange(vol.shape[axis]))


def test_pad_is_bottom_right_and_crop_is_centred():
    vol = np.zeros((2, 10, 7), np.float32)
    vol[:, :, :] = np.arange(70).reshape(10, 7) + 1
    got = preprocess_volume(vol, PreprocessOptions(ny=6, nx=9, min_size=1, low_percentile=0,
                                                   high_percentile=100, clip_percentile=100))
    assert got.valid_shape == (6, 7)
    scaled = (np.arange(70).reshape(10, 7)) / 69.0
    np.testing.assert_allclose(got.images[0, :, :7], scaled[2:8], atol=1e-7)   # rows 2..7
    assert not got.images[:, :, 7:].any()                                        # pad right


def test_slice_selection_central_and_content():
    vol = random_volume(2)
    central = preprocess_volume(vol, PreprocessOptions(ny=40, nx=48, slices="central",
                                                       central_fraction=0.5))
    np.testing.assert_array_equal(central.slice_indices, [2, 3, 4, 5])
    full = preprocess_volume(vol, PreprocessOptions(ny=40, nx=48))
    np.testing.assert_array_equal(central.images, full.images[2:6])
    means = full.images.mean(axis=(1, 2))
    thr = float(np.median(means))
    content = preprocess_volume(vol, PreprocessOptions(ny=40, nx=48, slices="content",
                                                       content_threshold=thr))
    np.testing.assert_array_equal(content.slice_indices, np.flatnonzero(means >= thr))


@pytest.mark.parametrize("make,match", [
    (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 5, np.nan, v), "NaN/Inf"),
    (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 7, np.inf, v), "NaN/Inf"),
    (lambda v: np.full_like(v, 3.0), "no intensity range"),
    (lambda v: v[:, :10, :], "smaller than the minimum"),
])
def test_bad_volumes_name_the_file(tmp_path, make, match):
    path = write_nifti(tmp_path / "bad.nii.gz", make(random_volume(0)).astype(np.float32))
    vol = load_volume(path)
    with pytest.raises(DataError, match=match) as e:
        preprocess_volume(vol, PreprocessOptions(ny=40, nx=48), path=str(path))
    assert str(path) in str(e.value) and "Fix:" in str(e.value)


def test_4d_volume_rejected_but_trailing_singleton_accepted(tmp_path):
    v = random_volume(0)
    p4 = write_nifti(tmp_path / "four.nii.gz", np.stack([v, v], -1))
    with pytest.raises(DataError, match="4-D") as e:
        load_volume(p4)
    assert str(p4) in str(e.value)
    p1 = write_nifti(tmp_path / "one.nii.gz", v[..., None])
    assert load_volume(p1).shape == v.shape


def test_corrupt_and_truncated_gz(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", random_volume(0))
    data = good.read_bytes()
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    for p in (trunc, junk):
        with pytest.raises(DataError, match="corrupt or truncated") as e:
            load_volume(p)
        assert str(p) in str(e.value) and "Fix:" in str(e.value)
