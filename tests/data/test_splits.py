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


# ds005616-style participant labels (site prefix + code), as the seed's splits.json lists them.
SITES = ("amu", "barcelona", "unfErssm", "balgrist", "brnoUhb", "cardiff", "mountSinai")


def _labels(n: int = 56) -> list[str]:
    return [f"{SITES[i % len(SITES)]}{i:03d}" if i % 4 else f"{SITES[i % len(SITES)]}AL{i}"
            for i in range(n)]


def _seed_format_split(labels: list[str]) -> dict[str, list[str]]:
    """39 / 8 / 9 labels without the ``sub-`` prefix, the seed's training_data/splits.json."""
    return {"train": labels[:39], "val": labels[39:47], "test": labels[47:]}


def test_seed_split_file_of_participant_labels_over_a_bids_tree(tmp_path, capsys):
    from nifti_data import random_volume, write_nifti

    from kmri_jax.cli import prepare
    from kmri_jax.data import SliceStore

    labels = _labels()
    root = tmp_path / "ds005616"
    for i, label in enumerate(labels):
        sub = f"sub-{label}"
        write_nifti(root / sub / "anat" / f"{sub}_T2w.nii.gz", random_volume(i, (2, 8, 8)))  # tiny: --min-size 8
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps(_seed_format_split(labels)))

    assert prepare.main(["--data-root", str(root), "--store", str(tmp_path / "store"),
                         "--splits", str(split_file), "--ny", "8", "--nx", "8", "--min-size", "8",
                         "-q"]) == 0
    store = SliceStore(tmp_path / "store")
    expected = {k: sorted(f"sub-{s}" for s in v) for k, v in _seed_format_split(labels).items()}
    assert store.splits == expected                      # written with the prefix, one spelling
    assert [len(store.splits[k]) for k in ("train", "val", "test")] == [39, 8, 9]
    assert len(store) == 2 * 56
    for name, subjects in expected.items():             # every slice in its subject's split
        rows = store.indices(name)
        got = {store.volumes[v]["subject"] for v in store.index["volume"][rows]}
        assert got == set(subjects)


def test_labels_and_ids_mix_and_a_subject_named_twice_is_an_error(tmp_path):
    from kmri_jax.data.splits import match_subjects

    subjects = ["sub-amuAL", "sub-amuJW", "sub-x"]
    resolved, left = match_subjects({"train": ["amuAL", "sub-amuJW"], "val": [], "test": []},
                                    subjects, path=None)
    assert resolved["train"] == ["sub-amuAL", "sub-amuJW"] and left == ["sub-x"]
    with pytest.raises(DataError, match="both name the subject sub-amuAL"):
        match_subjects({"train": ["amuAL"], "val": ["sub-amuAL"], "test": []}, subjects,
                       path=tmp_path / "s.json")
    with pytest.raises(DataError, match="not found"):
        match_subjects({"train": ["nobody"], "val": [], "test": []}, subjects, path=None)
