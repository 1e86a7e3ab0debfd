import json

import pytest

from kmri_jax.data import DataError, load_splits, make_splits, save_splits
from kmri_jax.data.splits import check_splits

SUBJECTS = [f"sub-{i:03d}" for i in range(1, 57)]


def test_split_deterministic_disjoint_and_70_15_15():
    a = make_splits(SUBJECTS, seed=3)
    assert a == make_splits(list(reversed(SUBJECTS)), seed=3)   # order of input irrelevant
    assert a != make_splits(SUBJECTS, seed=4)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (40, 8, 8)
    together = a["train"] + a["val"] + a["test"]
    assert sorted(together) == SUBJECTS and len(set(together)) == 56


def test_small_split_keeps_val_and_test_nonempty():
    s = make_splits(["a", "b", "c", "d"], seed=0)
    assert len(s["val"]) == 1 and len(s["test"]) == 1 and len(s["train"]) == 2


def test_json_round_trip_matches_seed_format(tmp_path):
    s = make_splits(SUBJECTS, seed=1)
    save_splits(s, tmp_path / "splits.json")
    raw = json.loads((tmp_path / "splits.json").read_text())
    assert set(raw) == {"train", "val", "test"} and raw == s
    assert load_splits(tmp_path / "splits.json") == s


def test_split_file_naming_unknown_subjects(tmp_path):
    p = tmp_path / "splits.json"
    p.write_text(json.dumps({"train": ["sub-001", "sub-999"], "val": [], "test": []}))
    with pytest.raises(DataError, match="sub-999") as e:
        check_splits(load_splits(p), SUBJECTS[:3], path=p)
    assert str(p) in str(e.value) and "Fix:" in str(e.value)


def test_bad_split_files(tmp_path):
    p = tmp_path / "s.json"
    p.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_splits(p)
    p.write_text(json.dumps({"train": ["a"], "val": ["a"]}))
    with pytest.raises(DataError, match="both"):
        load_splits(p)
