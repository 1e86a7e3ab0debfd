import json
import logging
import os

import nibabel as nib
import numpy as np
import pytest

from kmri_jax.cli.prepare import main as prepare_main
from kmri_jax.data import (DataError, PreprocessOptions, SliceStore, build_store, ensure_store,
                           make_splits, save_splits)
from kmri_jax.data.preprocess import preprocess_volume
from nifti_data import random_volume, write_bids, write_nifti
from test_preprocess import reference_slices

OPTS = PreprocessOptions(ny=40, nx=64)


def leftovers(parent):
    """Temporary/backup folders a failed or finished build could leave."""
    return [p for p in os.listdir(parent) if ".tmp-" in p or ".old-" in p]


def test_store_round_trip_bit_exact(tmp_path):
    root = write_bids(tmp_path / "ds", 4)
    report = build_store(root, tmp_path / "store", options=OPTS, split_seed=5)
    store = SliceStore(report.path)
    assert len(store) == 4 * 8 and store.images.shape == (32, 40, 64)
    assert store.splits == make_splits([f"sub-{i:02d}" for i in range(1, 5)], seed=5)
    for vi, vol_meta in enumerate(store.volumes):
        data = nib.load(root / vol_meta["path"]).get_fdata(dtype=np.float32)
        rows = np.flatnonzero(store.index["volume"] == vi)
        written = preprocess_volume(data, OPTS).images
        np.testing.assert_array_equal(store.images[rows], written)          # bit-exact
        want, valid = reference_slices(data, ny=40, nx=64)
        np.testing.assert_allclose(store.images[rows], want, atol=2e-7)
        idx = store.index[rows]
        assert store.subjects[idx["subject"][0]] == vol_meta["subject"]
        np.testing.assert_array_equal(idx["slice"], np.arange(8))
        assert (idx["valid_rows"] == valid[0]).all() and (idx["valid_cols"] == valid[1]).all()
        np.testing.assert_allclose(idx["tr"], 2.0 + 0.1 * vi)
        np.testing.assert_allclose(idx["te"], 0.1)
        split = [k for k in ("train", "val", "test") if vol_meta["subject"] in store.splits[k]][0]
        assert (idx["split"] == ("train", "val", "test").index(split)).all()
    assert sorted(np.concatenate([store.indices(s) for s in ("train", "val", "test")])) == \
        list(range(32))
    assert leftovers(tmp_path) == []


def test_split_file_used_and_unknown_subjects_rejected(tmp_path):
    root = write_bids(tmp_path / "ds", 3)
    sp = tmp_path / "splits.json"
    save_splits({"train": ["sub-01"], "val": ["sub-02"], "test": ["sub-03"]}, sp)
    store = SliceStore(build_store(root, tmp_path / "s", options=OPTS, splits=sp).path)
    assert set(store.index["subject"][store.indices("val")]) == {1}
    sp.write_text(json.dumps({"train": ["sub-01", "sub-77"], "val": [], "test": []}))
    with pytest.raises(DataError, match="sub-77") as e:
        build_store(root, tmp_path / "s2", options=OPTS, splits=sp)
    assert str(sp) in str(e.value)
    assert not (tmp_path / "s2").exists() and leftovers(tmp_path) == []


def test_strict_stops_and_leaves_nothing_non_strict_skips_with_count(tmp_path, caplog):
    root = write_bids(tmp_path / "ds", 5)
    bad = root / "sub-03" / "anat" / "sub-03_T2w.nii.gz"
    bad.write_bytes(bad.read_bytes()[:300])                       # truncated
    write_nifti(root / "sub-04" / "anat" / "sub-04_T2w.nii.gz",
                np.full((8, 40, 48), 2.0, np.float32))             # constant
    with pytest.raises(DataError, match="corrupt or truncated") as e:
        build_store(root, tmp_path / "store", options=OPTS)
    assert str(bad) in str(e.value)
    assert not (tmp_path / "store").exists() and leftovers(tmp_path) == []
    report = build_store(root, tmp_path / "store", options=OPTS, strict=False)
    assert report.n_volumes == 3 and len(report.skipped) == 2
    assert "skipped 2 bad volume(s)" in caplog.text
    store = SliceStore(tmp_path / "store")
    assert [v["subject"] for v in store.volumes] == ["sub-01", "sub-02", "sub-05"]
    assert len(store.meta["skipped"]) == 2


def test_failed_rebuild_keeps_the_old_store(tmp_path):
    root = write_bids(tmp_path / "ds", 3)
    build_store(root, tmp_path / "store", options=OPTS)
    before = np.array(SliceStore(tmp_path / "store").images)
    write_nifti(root / "sub-02" / "anat" / "sub-02_T2w.nii.gz",
                np.where(random_volume(1) > 50, np.nan, random_volume(1)))
    with pytest.raises(DataError, match="NaN"):
        build_store(root, tmp_path / "store", options=PreprocessOptions(ny=40, nx=48))
    np.testing.assert_array_equal(SliceStore(tmp_path / "store").images, before)
    assert leftovers(tmp_path) == []


def test_ensure_store_phantom_reuse_and_rebuild(tmp_path, caplog):
    opts = PreprocessOptions(ny=48, nx=64)
    path = ensure_store(None, tmp_path / "store", options=opts, phantom_subjects=4,
                        phantom_slices=6, seed=1)
    assert (tmp_path / "store-phantom" / "sub-01" / "anat" / "sub-01_T2w.json").is_file()
    mtime = (path / "images.f32").stat().st_mtime_ns
    assert ensure_store("", tmp_path / "store", options=opts, phantom_subjects=4,
                        phantom_slices=6, seed=1) == path
    assert (path / "images.f32").stat().st_mtime_ns == mtime              # reused
    with caplog.at_level(logging.INFO, logger="kmri_jax.data"):
        ensure_store(None, tmp_path / "store", options=PreprocessOptions(ny=48, nx=64,
                     blank_rows=2), phantom_subjects=4, phantom_slices=6, seed=1)
    assert "(preprocess differ); rebuilding" in caplog.text                # says what changed
    store = SliceStore(path)
    assert store.meta["config"]["preprocess"]["blank_rows"] == 2          # rebuilt
    assert not store.images[:, :2].any()
    assert len(store) == 24 and leftovers(tmp_path) == []


def test_no_volumes_and_missing_folder_leave_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    for root, match in ((tmp_path / "empty", "no volumes found"), (tmp_path / "gone",
                                                                  "does not exist")):
        with pytest.raises(DataError, match=match):
            build_store(root, tmp_path / "store", options=OPTS)
    assert not (tmp_path / "store").exists() and leftovers(tmp_path) == []


def test_cli_prepare(tmp_path, capsys):
    root = write_bids(tmp_path / "ds", 3)
    assert prepare_main(["--data-root", str(root), "--store", str(tmp_path / "st"), "--ny", "40",
                         "--nx", "64", "--splits", str(tmp_path / "splits.json"), "-q"]) == 0
    assert "24 slices from 3 volumes" in capsys.readouterr().out
    assert json.loads((tmp_path / "splits.json").read_text()) == SliceStore(tmp_path / "st").splits
    assert prepare_main(["--data-root", str(tmp_path / "nope"), "--store",
                         str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
