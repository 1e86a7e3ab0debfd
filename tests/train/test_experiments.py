"""The experiment configs load as the issue specifies, and the quickstart runs end to end
through the kmri-train CLI at a reduced size."""

from __future__ import annotations

import csv
from pathlib import Path

from kmri_jax.cli.train import load_config, main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_every_experiment_is_a_valid_run_with_its_command_in_the_docstring():
    """What a user meets first: each config passes the loop's checks (corruption, loss,
    evaluation combinations, batch sizes, a buildable model) and says how to run it."""
    import jax
    import optax

    from kmri_jax.train.corruption import Corruption
    from kmri_jax.train.loop import eval_combinations
    from kmri_jax.train.losses import loss_from_config
    from kmri_jax.train.state import create_state

    names = sorted(p.name for p in EXPERIMENTS.glob("*.py"))
    assert {"default.py", "quickstart.py", "seed_replica.py"} <= set(names)
    for name in names:
        text = (EXPERIMENTS / name).read_text()
        assert f"kmri-train --config experiments/{name}" in text, name
        config = load_config(str(EXPERIMENTS / name))
        Corruption.from_config(config)
        loss_from_config(config.train)
        assert eval_combinations(config.eval.combinations)
        config.model.base_channels = 4  # the structure, cheaply
        jax.eval_shape(lambda: create_state(0, model_config=config.model, tx=optax.adam(1e-3))[0])


def test_seed_replica_is_the_seed_setting():
    c = load_config(f"{EXPERIMENTS / 'seed_replica.py'}:/data/ds005616")
    assert c.data.root == "/data/ds005616"
    assert (c.data.ny, c.data.nx) == (424, 736)
    assert (c.corruption.mode, c.corruption.combinations_per_slice) == ("fixed", 81)
    assert (c.train.batch_size, c.train.num_epochs, c.seed) == (32, 20, 42)
    assert (c.train.learning_rate, c.train.end_learning_rate) == (1e-3, 1e-6)
    assert c.train.lr_per_epoch and c.train.loss == "seed_masked_l1"
    assert c.model.base_channels == 32 and not c.model.residual


def test_default_uses_fresh_corruption():
    c = load_config(str(EXPERIMENTS / "default.py"))
    assert c.corruption.mode == "fresh" and c.corruption.combinations_per_slice == 0


def test_quickstart_runs_end_to_end_reduced(tmp_path, capsys):
    workdir = tmp_path / "qs"
    status = main([
        "--config", str(EXPERIMENTS / "quickstart.py"), "--workdir", str(workdir),
        "--config.data.ny=32", "--config.data.nx=48", "--config.data.phantom_subjects=6",
        "--config.data.phantom_slices=6", "--config.model.base_channels=4",
        "--config.train.batch_size=4", "--config.train.max_steps=3",
        "--config.eval.combinations=0,80", "--config.checkpoint.async_save=False",
    ])  # estimate_unet: the network reuses the estimate row's search (one compiled search)
    assert status == 0
    printed = capsys.readouterr().out
    assert "SSIM" in printed and "input" in printed and "estimate" in printed
    with open(workdir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["val_SSIM"]) <= 1.0
    assert (workdir / "checkpoints" / "3").is_dir()
    assert any((workdir / "tensorboard").glob("events.out.tfevents.*"))


def test_unknown_override_key_is_one_clear_error(tmp_path, capsys):
    status = main(["--config", str(EXPERIMENTS / "quickstart.py"), "--workdir", str(tmp_path),
                   "--config.train.batch_sise=4"])
    assert status == 2
    err = capsys.readouterr().err
    assert "batch_sise" in err and "Traceback" not in err
