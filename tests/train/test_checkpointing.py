"""Checkpointer: round trip, retention (latest N + best), resume, clear errors, nothing lost."""

from __future__ import annotations

import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kmri_jax.train.checkpointing import CheckpointError, Checkpointer, abstract_like


class _State(NamedTuple):
    params: dict[str, Any]
    opt: tuple[Any, ...]
    key: jax.Array
    step: jax.Array


def _state(seed: int, *, channels: int = 4) -> _State:
    rng = np.random.default_rng(seed)
    params = {
        "conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, channels)), jnp.float32)},
        "bias": jnp.asarray(rng.normal(size=(channels,)), jnp.float32),
    }
    opt = (jnp.int32(seed), {"mu": jnp.zeros((channels,), jnp.float32)})
    return _State(params, opt, jax.random.key(seed), jnp.int32(seed * 10))


def _assert_same(a: _State, b: _State) -> None:
    np.testing.assert_array_equal(jax.random.key_data(a.key), jax.random.key_data(b.key))
    assert b.key.dtype == a.key.dtype
    for x, y in zip(jax.tree.leaves(a._replace(key=0)), jax.tree.leaves(b._replace(key=0))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_with_key_metadata_and_data_state(tmp_path: pathlib.Path) -> None:
    state = _state(1)
    data_dict = {"next_index": 17, "epoch": 2, "nested": {"seed": 42}}
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.save(
            5, state, metadata={"epoch": 2, "lr": np.float32(0.5)}, data_state=data_dict
        )
        ckpt.save(6, state, data_state=b'{"last_seen": 3}')  # DataLoader-style bytes state
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 6
        restored, meta, data_state = ckpt.restore(abstract_like(state, sharding=sharding), step=5)
        _, _, data_bytes = ckpt.restore(abstract_like(state), step=6)
    _assert_same(state, restored)
    assert restored.key.sharding == sharding
    assert meta == {"epoch": 2, "lr": 0.5, "step": 5}
    assert data_state == data_dict
    assert data_bytes == b'{"last_seen": 3}'


def test_latest_n_and_best_are_kept_and_resume_takes_latest(tmp_path: pathlib.Path) -> None:
    ssim = {1: 0.50, 2: 0.90, 3: 0.60, 4: 0.70, 5: 0.65}  # best at step 2
    with Checkpointer(tmp_path, max_to_keep=2, best_metric="val_SSIM", best_mode="max") as ckpt:
        for step, value in ssim.items():
            ckpt.save(step, _state(step), metrics={"val_SSIM": value, "val_loss": 1 - value})
        ckpt.save(6, _state(6))  # a preemption save without validation metrics
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [2, 5, 6]
        assert ckpt.best_step() == 2
    kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert kept == [2, 5, 6]
    with Checkpointer(tmp_path, max_to_keep=2, best_metric="val_SSIM", best_mode="max") as ckpt:
        assert ckpt.latest_step() == 6
        state, meta, data = ckpt.restore(abstract_like(_state(0)))
        assert meta["step"] == 6 and data is None
        _assert_same(_state(6), state)
        _, best_meta, _ = ckpt.restore(abstract_like(_state(0)), step=ckpt.best_step())
        assert best_meta["metrics"]["val_SSIM"] == pytest.approx(0.90)


def test_best_by_min_mode(tmp_path: pathlib.Path) -> None:
    losses = {1: 0.3, 2: 0.1, 3: 0.4, 4: 0.5}
    with Checkpointer(tmp_path, max_to_keep=1, best_metric="val_loss", best_mode="min") as ckpt:
        for step, value in losses.items():
            ckpt.save(step, _state(step), metrics={"val_loss": value})
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [2, 4]
        assert ckpt.best_step() == 2


def test_incompatible_state_is_one_clear_error_and_nothing_is_lost(tmp_path: pathlib.Path) -> None:
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(3, _state(3, channels=4))
    step_dir = tmp_path / "checkpoints" / "3"
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError) as wider:
            ckpt.restore(abstract_like(_state(0, channels=8)))
        other = _state(0)._replace(params={"other": jnp.zeros((2,))})
        with pytest.raises(CheckpointError) as renamed:
            ckpt.restore(abstract_like(other))
    for err in (wider, renamed):
        message = str(err.value)
        assert str(step_dir) in message and "--workdir" in message
    assert "params/bias" in str(wider.value) and "(4,)" in str(wider.value)
    assert "params/other" in str(renamed.value)
    assert step_dir.is_dir()
    with Checkpointer(tmp_path) as ckpt:  # still restorable with the right config
        _assert_same(_state(3), ckpt.restore(abstract_like(_state(0))).state)


def test_corrupt_checkpoint_is_one_clear_error(tmp_path: pathlib.Path) -> None:
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(1))
    step_dir = tmp_path / "checkpoints" / "1"
    for f in (step_dir / "state").rglob("*"):  # e.g. a disk that filled up mid-copy
        if f.is_file():
            f.write_bytes(b"garbage")
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match=str(step_dir)):
            ckpt.restore(abstract_like(_state(0)))
    assert step_dir.is_dir()


def test_no_checkpoint_and_duplicate_step(tmp_path: pathlib.Path) -> None:
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="no checkpoint"):
            ckpt.restore(abstract_like(_state(0)))
        assert ckpt.save(1, _state(1))
        assert not ckpt.save(1, _state(2))  # already saved: no error, not overwritten
        _assert_same(_state(1), ckpt.restore(abstract_like(_state(0))).state)
    with pytest.raises(TypeError, match="JSON"):
        with Checkpointer(tmp_path) as ckpt:
            ckpt.save(2, _state(2), metadata={"bad": object()})


def test_grain_iterator_resumes_where_it_stopped(tmp_path: pathlib.Path) -> None:
    import grain

    dataset = grain.MapDataset.range(20).shuffle(seed=3).batch(2).to_iter_dataset()
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(3, _state(3), data_state=iterator.get_state())
    expected = [next(iterator).tolist() for _ in range(4)]
    resumed = iter(dataset)
    with Checkpointer(tmp_path) as ckpt:
        _, _, data_state = ckpt.restore(abstract_like(_state(0)))
    resumed.set_state(data_state)
    assert [next(resumed).tolist() for _ in range(4)] == expected


def test_relative_workdir_saves_asynchronously(tmp_path: pathlib.Path, monkeypatch) -> None:
    """A relative --workdir (as in the README's quickstart) must work with async saves."""
    monkeypatch.chdir(tmp_path)
    state = _state(3)
    with Checkpointer("runs/rel", async_save=True) as ckpt:
        ckpt.save(1, state)
    assert (tmp_path / "runs" / "rel" / "checkpoints" / "1").is_dir()
    with Checkpointer("runs/rel") as ckpt:
        restored, _, _ = ckpt.restore(abstract_like(state))
    _assert_same(state, restored)
