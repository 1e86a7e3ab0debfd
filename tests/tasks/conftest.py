"""Shared fixtures of the command tests: a tiny phantom dataset and a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import jax
import optax
import pytest


def tiny_config():
    """The training tests' tiny config (tests/tiny_run.py), non-residual: a residual net
    starts as the identity, so its output would equal its input."""
    from tiny_run import tiny_config as base

    c = base()
    c.model.residual = False
    c.train.max_steps = 1
    return c


SHAPE = (6, 32, 48)  # [X, Y, Z]: 6 sagittal slices of 32 x 48, the tiny model's size


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Path:
    """A BIDS phantom dataset of 2 subjects, ``6 x 32 x 48`` int16 volumes with sidecars."""
    from kmri_jax.data.phantom import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("bids"), n_subjects=2, shape=SHAPE,
                                 seed=3)


@pytest.fixture(scope="session")
def volume_file(phantom) -> Path:
    return phantom / "sub-01" / "anat" / "sub-01_T2w.nii.gz"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A workdir holding one checkpoint laid out as the training loop writes it (the loop's
    own Checkpointer, its TrainState and ``{"epoch", "config"}`` metadata), for the tiny
    config: 32 x 48 slices, base_channels 4. Weights are the initial ones plus a small
    perturbation of the BatchNorm statistics, so restoring them is observable."""
    from kmri_jax.train.checkpointing import Checkpointer
    from kmri_jax.train.state import create_state

    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config()
    tx = optax.adam(optax.constant_schedule(1e-3))
    state, _ = create_state(config.seed, model_config=config.model, tx=tx)
    stats = jax.tree.map(lambda v: v + 0.01, state.batch_stats)
    state = state._replace(batch_stats=stats, step=state.step + 2)
    with Checkpointer(workdir, async_save=False) as ckpt:
        ckpt.save(2, state, metadata={"epoch": 1, "config": config.to_dict()})
    return workdir
