"""kmri-train command line: config loading, typed overrides, one clear error per user mistake.

Each run is a subprocess with ``kmri_jax.train.loop`` replaced by a stub that records what it
received, so the test exercises argument parsing, exit codes and stderr exactly as a user sees
them, without training.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from kmri_jax.cli.train import config_keys
from kmri_jax.config import base_config

CONFIG = textwrap.dedent(
    '''
    """A throwaway config. kmri-train --config THIS_FILE[:size] --workdir DIR"""
    import ml_collections

    def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.name = "tiny" if arg is None else f"tiny-{arg}"
        c.batch_size = 4
        c.learning_rate = 1e-3
        c.use_ema = False
        c.image_shape = (32, 32)
        c.data_root = ml_collections.config_dict.placeholder(str)  # optional, typed
        c.model = ml_collections.ConfigDict()
        c.model.base_channels = 32
        c.model.dropout = 0.0
        c.fail = ""
        return c
    '''
)

STUB = textwrap.dedent(
    """
    import json, pathlib, runpy, sys, types

    def train_and_evaluate(config, workdir):
        if config.fail:
            from kmri_jax.train.checkpointing import CheckpointError
            raise CheckpointError(config.fail)
        pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
        flat = {
            "name": config.name, "batch_size": config.batch_size,
            "learning_rate": config.learning_rate, "use_ema": config.use_ema,
            "image_shape": list(config.image_shape), "data_root": config.data_root,
            "base_channels": config.model.base_channels, "dropout": config.model.dropout,
        }
        types_ = {k: type(v).__name__ for k, v in flat.items()}
        types_["image_shape"] = type(config.image_shape).__name__
        (pathlib.Path(workdir) / "received.json").write_text(json.dumps([flat, types_]))

    stub = types.ModuleType("kmri_jax.train.loop")
    stub.train_and_evaluate = train_and_evaluate
    sys.modules["kmri_jax.train.loop"] = stub
    sys.argv = ["kmri-train", *sys.argv[1:]]
    runpy.run_module("kmri_jax.cli.train", run_name="__main__")  # python -m kmri_jax.cli.train
    """
)


@pytest.fixture()
def config_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "tiny_config.py"
    path.write_text(CONFIG)
    return path


def _run(tmp_path: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "run_stubbed.py"
    stub.write_text(STUB)
    return subprocess.run(
        [sys.executable, str(stub), *args], capture_output=True, text=True, timeout=120
    )


def test_overrides_are_applied_with_field_types(tmp_path: pathlib.Path, config_file: pathlib.Path) -> None:
    workdir = tmp_path / "run"
    result = _run(
        tmp_path,
        "--config", f"{config_file}:small",
        "--workdir", str(workdir),
        "--config.batch_size=8",
        "--config.learning_rate", "2e-4",
        "--config.use_ema=true",
        "--config.image_shape=(64, 48)",
        "--config.model.base_channels=16",
        "--config.model.dropout=0",
        "--config.data_root=/data/ds005616",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    values, types = json.loads((workdir / "received.json").read_text())
    assert values == {
        "name": "tiny-small", "batch_size": 8, "learning_rate": 2e-4, "use_ema": True,
        "image_shape": [64, 48], "data_root": "/data/ds005616", "base_channels": 16,
        "dropout": 0.0,
    }  # fmt: skip
    assert types["batch_size"] == "int" and types["learning_rate"] == "float"
    assert types["use_ema"] == "bool" and types["image_shape"] == "tuple"
    assert types["dropout"] == "float"


def _assert_one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_unknown_key_names_it_and_suggests(tmp_path: pathlib.Path, config_file: pathlib.Path) -> None:
    result = _run(
        tmp_path, "--config", str(config_file), "--workdir", str(tmp_path / "run"),
        "--config.model.base_chanels=16",
    )  # fmt: skip
    _assert_one_clear_error(result, "config.model.base_chanels", "config.model.base_channels")
    assert not (tmp_path / "run").exists()


def test_missing_config_file_and_bad_value(tmp_path: pathlib.Path, config_file: pathlib.Path) -> None:
    missing = _run(tmp_path, "--config", "experiments/nope.py", "--workdir", str(tmp_path / "r"))
    _assert_one_clear_error(missing, "experiments/nope.py", "not found")
    bad = _run(
        tmp_path, "--config", str(config_file), "--workdir", str(tmp_path / "r"),
        "--config.batch_size=eight",
    )  # fmt: skip
    _assert_one_clear_error(bad, "config.batch_size", "'eight'")


def test_errors_raised_by_the_run_are_one_line(tmp_path: pathlib.Path, config_file: pathlib.Path) -> None:
    result = _run(
        tmp_path, "--config", str(config_file), "--workdir", str(tmp_path / "run"),
        "--config.fail=checkpoint does not match; use another --workdir",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "kmri-train: error: checkpoint does not match" in result.stderr


def test_every_config_key_named_to_users_exists() -> None:
    """Hints in messages, help texts and docs name real keys (``--config.batch_size`` did not)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    keys = set(config_keys(base_config()))
    named: dict[str, str] = {}
    texts = [*root.glob("kmri_jax/**/*.py"), *root.glob("experiments/*.py"),
             *root.glob("tools/**/*.py"), *root.glob("docs/*.md"), root / "README.md"]
    for path in texts:
        for key in re.findall(r"--config\.([\w.]+)", path.read_text()):
            if key.upper() != key and not key.endswith("."):  # not --config.KEY, f"{...}"
                named.setdefault(key, str(path.relative_to(root)))
    assert len(named) > 10
    unknown = {k: where for k, where in named.items() if k not in keys}
    assert not unknown, unknown
