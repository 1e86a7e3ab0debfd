"""The training loop end to end on tiny phantom data: learning, compile-once, resume after
SIGTERM, checkpoint compatibility, and clear errors for bad input."""

from __future__ import annotations

import csv
import os
import signal

import numpy as np
import pytest

from kmri_jax.config import ConfigValueError
from kmri_jax.data import DataError
from kmri_jax.train.checkpointing import CheckpointError
from kmri_jax.sim import orthogonal_combinations
from kmri_jax.train.loop import eval_combinations, train_and_evaluate


def _losses(config, workdir, *, stop_at=None):
    """Run the loop, returning {step: loss}; send SIGTERM to ourselves after ``stop_at``."""
    seen = {}

    def on_step(step, metrics):
        seen[step] = float(metrics["loss"])
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    summary = train_and_evaluate(config, workdir, on_step=on_step)
    return seen, summary


def test_sigterm_then_resume_continues_exactly(config, shared_store, tmp_path):
    config.data.store = str(shared_store)
    config.train.max_steps = 5
    full, _ = _losses(config, tmp_path / "full")

    interrupted, summary = _losses(config, tmp_path / "cut", stop_at=2)
    assert sorted(interrupted) == [1, 2]  # stopped right after the signal...
    assert summary == {}  # ...without evaluating
    assert (tmp_path / "cut" / "checkpoints" / "2").is_dir()  # ...but with a checkpoint

    resumed, summary = _losses(config, tmp_path / "cut")
    assert sorted(resumed) == [3, 4, 5]
    np.testing.assert_allclose([resumed[s] for s in (3, 4, 5)], [full[s] for s in (3, 4, 5)],
                               rtol=1e-6)
    assert 0.0 <= summary["val_SSIM"] <= 1.0

    with open(tmp_path / "cut" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_SSIM", "val_PSNR", "lr", "time_s"]


def test_incompatible_checkpoint_is_one_clear_error(config, shared_store, tmp_path):
    config.data.store = str(shared_store)
    config.train.max_steps = 1
    train_and_evaluate(config, tmp_path)
    config.model.base_channels = 8
    with pytest.raises(ConfigValueError, match="base_channels=4") as err:
        train_and_evaluate(config, tmp_path)
    assert str(tmp_path) in str(err.value)
    assert (tmp_path / "checkpoints" / "1").is_dir()  # nothing lost
    # Without the stored config (e.g. written by other code), the shape check still says why.
    from kmri_jax.train.checkpointing import Checkpointer, abstract_like
    import optax
    from kmri_jax.train.state import create_state
    state, _ = create_state(0, model_config=config.model, tx=optax.adam(1e-3))
    with Checkpointer(tmp_path) as ckpt, pytest.raises(CheckpointError, match="does not match"):
        ckpt.restore(abstract_like(state))


def test_missing_data_root_is_one_clear_error(config, tmp_path):
    config.data.root = str(tmp_path / "no-such-dataset")
    with pytest.raises(DataError) as err:
        train_and_evaluate(config, tmp_path / "run")
    assert "no-such-dataset" in str(err.value)


def test_orthogonal_combinations_balance_every_pair_of_parameters():
    combos = orthogonal_combinations()
    levels = np.array([[c // 27, c // 9 % 3, c // 3 % 3, c % 3] for c in combos])
    for i in range(4):
        for j in range(i + 1, 4):
            pairs = {(a, b) for a, b in levels[:, [i, j]]}
            assert len(pairs) == 9  # every pair of levels exactly once
    assert eval_combinations("all") == list(range(81))
    assert eval_combinations("3, 5") == [3, 5]
    with pytest.raises(ValueError, match="eval.combinations"):
        eval_combinations("81")


def test_resuming_with_another_residual_setting_is_refused(config, shared_store, tmp_path):
    """Same parameter shapes, different function: caught from the stored config."""
    config.data.store = str(shared_store)
    config.train.max_steps = 1
    train_and_evaluate(config, tmp_path)
    config.model.residual = not config.model.residual
    with pytest.raises(ConfigValueError, match="model.residual"):
        train_and_evaluate(config, tmp_path)


def test_profile_trace_of_the_chosen_steps(config, shared_store, tmp_path):
    import jax

    config.data.store = str(shared_store)
    config.train.max_steps = 4
    config.runtime.profile_start_step, config.runtime.profile_steps = 1, 2
    train_and_evaluate(config, tmp_path / "traced")
    files = list((tmp_path / "traced" / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(files) == 1
    trace = jax.profiler.ProfileData.from_file(str(files[0]))
    events = [(line.name, ev.name) for plane in trace.planes for line in plane.lines
              for ev in line.events]
    assert any(name == "PjitFunction(train_step)" for _, name in events)  # The step's calls...
    assert any(line.startswith("tf_XLAEigen") for line, _ in events)  # ...and its XLA work.
    config.runtime.profile_steps = 0  # The default: no trace.
    train_and_evaluate(config, tmp_path / "plain")
    assert not (tmp_path / "plain" / "tensorboard" / "plugins").exists()
