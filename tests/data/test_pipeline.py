import collections

import numpy as np
import pytest

from kmri_jax.data import (DataError, VolumeSource, eval_batches, steps_per_epoch,
                           train_iterator, PreprocessOptions)

CONTRACT = {"image": np.float32, "valid_shape": np.int32, "tr": np.float32, "te": np.float32,
            "volume": np.int32, "slice": np.int32, "combination": np.int32, "weight": np.float32}


def take(it, n):
    return [next(it) for _ in range(n)]


def keys_of(batch):
    return list(zip(batch["volume"].tolist(), batch["slice"].tolist(),
                    batch["combination"].tolist()))


def row_of(store, volume, slice_):
    return int(np.flatnonzero((store.index["volume"] == volume) &
                              (store.index["slice"] == slice_))[0])


def test_batch_contract_and_content(module_store):
    s = module_store
    b = next(train_iterator(s, batch_size=5, seed=0))
    assert set(b) == set(CONTRACT)
    for k, dt in CONTRACT.items():
        assert b[k].dtype == dt and b[k].shape[0] == 5
    assert b["image"].shape == (5, 40, 64) and b["valid_shape"].shape == (5, 2)
    assert (b["combination"] == -1).all() and (b["weight"] == 1).all()
    for i, (v, sl, _) in enumerate(keys_of(b)):
        r = row_of(s, v, sl)
        np.testing.assert_array_equal(b["image"][i], s.images[r])
        assert tuple(b["valid_shape"][i]) == (40, 48)
        assert s.index["split"][r] == 0                       # train split only
        np.testing.assert_allclose(b["tr"][i], 2.0 + 0.1 * int(s.volumes[v]["subject"][-2:]) - 0.1)


def test_shuffle_determinism_and_epochs(module_store):
    s = module_store
    n_train = len(s.indices("train"))
    spe = steps_per_epoch(s, batch_size=4)
    assert spe == n_train // 4
    a = take(train_iterator(s, batch_size=4, seed=7), 2 * spe)
    b = take(train_iterator(s, batch_size=4, seed=7), 2 * spe)
    c = take(train_iterator(s, batch_size=4, seed=8), spe)
    ka = [k for x in a for k in keys_of(x)]
    assert ka == [k for x in b for k in keys_of(x)]
    assert ka[:spe * 4] != [k for x in c for k in keys_of(x)]
    e0, e1 = ka[:spe * 4], ka[spe * 4:]
    assert len(set(e0)) == len(e0) == n_train and set(e0) == set(e1) and e0 != e1
    assert sorted(e0) != e0                                       # actually shuffled


def test_resume_continues_exactly(module_store):
    s = module_store
    kw = dict(batch_size=3, seed=1, combinations_per_slice=2)
    it = train_iterator(s, **kw)
    take(it, 5)
    state = it.get_state()
    want = take(it, 25)                                           # crosses an epoch boundary
    it2 = train_iterator(s, **kw)
    it2.set_state(state)
    got = take(it2, 25)
    for w, g in zip(want, got):
        for k in CONTRACT:
            np.testing.assert_array_equal(w[k], g[k])


def test_workers_resume_and_same_order(module_store):
    s = module_store
    ref = take(train_iterator(s, batch_size=4, seed=3), 6)
    it = train_iterator(s, batch_size=4, seed=3, worker_count=1)
    try:
        got = take(it, 3)
        state = it.get_state()
    finally:
        it.close()
    it2 = train_iterator(s, batch_size=4, seed=3, worker_count=1)
    try:
        it2.set_state(state)
        got += take(it2, 3)
    finally:
        it2.close()
    assert [keys_of(b) for b in got] == [keys_of(b) for b in ref]
    np.testing.assert_array_equal(got[-1]["image"], ref[-1]["image"])


@pytest.mark.parametrize("shard_count", [2, 4])
def test_sharding_covers_every_sample_once(module_store, shard_count):
    s = module_store
    global_batch = 8
    single = take(train_iterator(s, batch_size=global_batch, seed=2), 2 * steps_per_epoch(
        s, batch_size=global_batch))
    hosts = [take(train_iterator(s, batch_size=global_batch // shard_count, seed=2,
                                 shard_index=h, shard_count=shard_count), len(single))
             for h in range(shard_count)]
    for step, ref in enumerate(single):
        joined = [k for h in range(shard_count) for k in keys_of(hosts[h][step])]
        assert joined == keys_of(ref)  # Host batches in host order = the global batch, in order.
        np.testing.assert_array_equal(
            np.concatenate([hosts[h][step]["image"] for h in range(shard_count)]), ref["image"])
    per_epoch = collections.Counter(k for h in hosts for b in h[:len(single) // 2]
                                    for k in keys_of(b))
    assert len(per_epoch) == len(s.indices("train")) and set(per_epoch.values()) == {1}


def test_combinations_each_once_per_epoch(module_store):
    s = module_store
    n = len(s.indices("train")) * 3
    spe = steps_per_epoch(s, batch_size=4, combinations_per_slice=3)
    keys = [k for b in take(train_iterator(s, batch_size=4, seed=0, combinations_per_slice=3),
                            spe) for k in keys_of(b)]
    assert spe * 4 == n and len(set(keys)) == n
    assert collections.Counter(k[2] for k in keys) == {0: n // 3, 1: n // 3, 2: n // 3}


def test_eval_in_order_padded_with_weight_zero(module_store):
    s = module_store
    rows = s.indices("val")
    ev = eval_batches(s, split="val", batch_size=5, combinations=[4, 80])
    batches = list(ev)
    assert len(ev) == len(batches) == -(-2 * len(rows) // 5)
    assert all(b["image"].shape == (5, 40, 64) for b in batches)
    w = np.concatenate([b["weight"] for b in batches])
    real = [k for b in batches for k, wt in zip(keys_of(b), b["weight"]) if wt == 1]
    want = [(int(s.index["volume"][r]), int(s.index["slice"][r]), c) for r in rows
            for c in (4, 80)]
    assert real == want and w.sum() == len(want) and (w[len(want):] == 0).all()
    assert list(eval_batches(s, split="val", batch_size=4))[0]["combination"].tolist() == [-1] * 4
    # Two hosts: the union of their real samples is every record once.
    hosts = [list(eval_batches(s, split="val", batch_size=3, combinations=[0, 1], shard_index=h,
                               shard_count=2)) for h in (0, 1)]
    single = list(eval_batches(s, split="val", batch_size=6, combinations=[0, 1]))
    assert len(hosts[0]) == len(hosts[1]) == len(single)
    for b, ref in enumerate(single):  # Host batches in host order = the global batch, in order.
        for field in ("volume", "slice", "combination", "weight"):
            np.testing.assert_array_equal(
                np.concatenate([hosts[0][b][field], hosts[1][b][field]]), ref[field])
    union = [k for h in hosts for b in h for k, wt in zip(keys_of(b), b["weight"]) if wt == 1]
    want01 = [(int(s.index["volume"][r]), int(s.index["slice"][r]), c) for r in rows
              for c in (0, 1)]
    assert sorted(union) == sorted(want01) and len(union) == len(want01)


def test_volume_source_matches_store(module_store, tmp_path):
    s = module_store
    root = s.meta["config"]["data_root"]
    vs = VolumeSource(root, options=PreprocessOptions(ny=40, nx=64), cache_volumes=2)
    a = next(train_iterator(vs, batch_size=6, seed=4))
    b = next(train_iterator(s, batch_size=6, seed=4))
    for k in CONTRACT:
        np.testing.assert_array_equal(a[k], b[k])


def test_batch_larger_than_split_is_a_clear_error(module_store):
    with pytest.raises(DataError, match="fewer than one global batch"):
        train_iterator(module_store, batch_size=1000, seed=0)
