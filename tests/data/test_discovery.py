import json
import logging

import numpy as np
import pytest

from kmri_jax.data import DataError, discover_volumes
from nifti_data import random_volume, write_bids, write_nifti


def test_bids_discovery_subjects_and_sidecars(bids):
    vols = discover_volumes(bids)
    assert [v.subject for v in vols] == [f"sub-{i:02d}" for i in range(1, 7)]
    assert all(v.path.endswith(f"{v.subject}_T2w.nii.gz") for v in vols)
    np.testing.assert_allclose([v.tr for v in vols], [2.0 + 0.1 * i for i in range(6)])
    assert all(v.te == 0.1 and v.timing_from_sidecar for v in vols)


def test_bids_ignores_other_suffixes_and_supports_sessions_and_pattern(tmp_path):
    root = write_bids(tmp_path, 2)
    write_nifti(tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz", random_volume(9))
    write_nifti(tmp_path / "sub-09" / "ses-1" / "anat" / "sub-09_ses-1_T2w.nii.gz",
                random_volume(9))
    assert [v.subject for v in discover_volumes(root)] == ["sub-01", "sub-02", "sub-09"]
    t1 = discover_volumes(root, suffix="T1w")
    assert [v.subject for v in t1] == ["sub-01"]
    assert len(discover_volumes(root, pattern="sub-0[12]/anat/*.nii.gz")) == 3


def test_plain_folder_of_nifti_files(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", random_volume(0))
    write_nifti(tmp_path / "deep" / "b.nii", random_volume(1))
    vols = discover_volumes(tmp_path)
    assert [v.subject for v in vols] == ["a", "b"]


def test_missing_sidecar_falls_back_and_logs_once(tmp_path, caplog):
    root = write_bids(tmp_path, 3, sidecar=False)
    (root / "sub-02" / "anat" / "sub-02_T2w.json").write_text(json.dumps({"EchoTime": 0.09}))
    with caplog.at_level(logging.WARNING, logger="kmri_jax.data"):
        vols = discover_volumes(root)
    assert [(v.tr, v.te) for v in vols] == [(2.5, 0.03), (2.5, 0.09), (2.5, 0.03)]
    msgs = [r for r in caplog.records if "default" in r.getMessage()]
    assert len(msgs) == 1 and "3 of 3" in msgs[0].getMessage()


def test_inherited_top_level_sidecar(tmp_path):
    root = write_bids(tmp_path, 2, sidecar=False)
    (root / "task_T2w.json").write_text(json.dumps({"RepetitionTime": 3.0, "EchoTime": 0.11}))
    assert [(v.tr, v.te) for v in discover_volumes(root)] == [(3.0, 0.11)] * 2


def test_invalid_sidecar_json_names_file(tmp_path):
    root = write_bids(tmp_path, 3)
    bad = root / "sub-02" / "anat" / "sub-02_T2w.json"
    bad.write_text('{"RepetitionTime": 2.5,')
    with pytest.raises(DataError, match="not valid JSON") as e:
        discover_volumes(root)
    assert str(bad) in str(e.value) and "Fix:" in str(e.value)
    problems = []
    vols = discover_volumes(root, strict=False, problems=problems)
    assert [v.subject for v in vols] == ["sub-01", "sub-03"] and len(problems) == 1


def test_missing_folder_and_no_volumes(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        discover_volumes(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)
    (tmp_path / "empty" / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(DataError, match="no volumes found.*Fix"):
        discover_volumes(tmp_path / "empty")
