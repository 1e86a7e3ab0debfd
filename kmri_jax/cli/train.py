"""``kmri-train``: train a network from an experiment config (flax's entry-point convention).

Usage::

    kmri-train --config experiments/quickstart.py --workdir runs/quick
    kmri-train --config experiments/seed_replica.py:/data/ds005616 --workdir runs/seed \\
        --config.train.batch_size=16 --config.model.base_channels=16

``--config FILE[:ARG]`` loads ``FILE`` and calls its ``get_config(ARG)`` (``get_config()``
without ``:ARG``); each ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides one
existing field, parsed as the field's type (``ml_collections.config_flags``). A mistyped key is
one error naming it and the keys it was probably meant to be. Rerunning with the same
``--workdir`` resumes from its latest checkpoint. Also ``python -m kmri_jax.cli.train``.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Iterator, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from kmri_jax.cli.common import run_command

__all__ = ["config_keys", "load_config", "main"]

log = logging.getLogger("kmri_jax")

_PROG = "kmri-train"
_PREFIX = "--config."


def config_keys(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[str]:
    """Every settable dotted key of ``config`` (nested ConfigDicts expanded)."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from config_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _flags(argv: Sequence[str]) -> tuple[flags.FlagValues, flags.FlagHolder, flags.FlagHolder]:
    """A fresh flag set for ``argv`` (so ``main`` can run more than once in a process), parsed."""
    values = flags.FlagValues()
    config = config_flags.DEFINE_config_file(
        "config", None, "experiment config file FILE[:ARG], e.g. experiments/quickstart.py",
        flag_values=values, lock_config=True, sys_argv=[_PROG, *argv])
    workdir = flags.DEFINE_string(
        "workdir", None, "run directory: checkpoints, TensorBoard events, history.csv",
        flag_values=values)
    values([_PROG, *argv])
    return values, config, workdir


def load_config(spec: str, *overrides: str) -> ml_collections.ConfigDict:
    """The config ``kmri-train --config SPEC [--config.KEY=VALUE ...]`` would run (for tools
    and tests); errors are config_flags' own exceptions."""
    _, config, _ = _flags(["--config", spec, *overrides])
    return config.value


def _unknown_key_message(argv: Sequence[str]) -> str | None:
    """Which ``--config.KEY`` of ``argv`` names no field, and the keys it may have meant."""
    plain = [a for i, a in enumerate(argv) if not a.startswith(_PREFIX)
             and not (i and argv[i - 1].startswith(_PREFIX) and "=" not in argv[i - 1])]
    _, config, _ = _flags(plain)
    keys = list(config_keys(config.value))
    for arg in argv:
        if not arg.startswith(_PREFIX):
            continue
        key = arg[len(_PREFIX):].split("=", 1)[0]
        if key in keys:
            continue
        close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
        if not close:  # e.g. the right field in the wrong group
            last = key.rsplit(".", 1)[-1]
            close = [k for k in keys if k.rsplit(".", 1)[-1] == last][:3]
        hint = f"; did you mean {', '.join('config.' + k for k in close)}?" if close else ""
        return f"unknown config key 'config.{key}'{hint}"
    return None


def _parse(argv: Sequence[str]) -> tuple[ml_collections.ConfigDict, str]:
    """The overridden config and the workdir; SystemExit(2) with one message when unusable.

    config_flags loads the file and applies the overrides when the value is first read, so
    that is done here, where each way it can fail becomes one line.
    """
    try:
        values, config, workdir = _flags(argv)
        if config.present == 0 or not workdir.value:
            _usage_error("give --config FILE[:ARG] and --workdir DIR")
        value = config.value
        if not isinstance(value, ml_collections.ConfigDict):
            getattr(value, "seed")  # config_flags' stand-in for a file that failed: raises
            _usage_error(f"get_config() returned {type(value).__name__}, expected an "
                         "ml_collections.ConfigDict")
        return value, workdir.value
    except flags.Error as e:
        _usage_error(str(e).splitlines()[0].replace("flag --config.", "config.", 1))
    except (AttributeError, KeyError) as e:
        _usage_error(_unknown_key_message(argv) or f"bad config override: {e}")
    except OSError as e:
        spec = next((b for a, b in zip(argv, argv[1:]) if a == "--config"), None) or next(
            (a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "?")
        reason = str(e).strip().splitlines()[-1].strip()
        _usage_error(f"config file not found or unreadable: {spec!r} ({reason}); "
                     "expected a Python file such as experiments/quickstart.py, optionally "
                     "followed by :ARG")
    except Exception as e:  # an error inside the config file's own code
        _usage_error(f"the config file failed: {type(e).__name__}: {e}")
    raise AssertionError("unreachable")


def _usage_error(message: str) -> None:
    print(f"usage: {_PROG} --config FILE[:ARG] --workdir DIR [--config.KEY=VALUE ...]\n"
          f"{_PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Orbax and others log through absl at INFO on every save; keep the terminal readable.
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notices


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``kmri-train``; returns the exit status (0 ok, 1 run failed, 2 bad usage/config)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, workdir = _parse(argv)
    except SystemExit as e:
        return int(e.code or 0)
    _configure_logging()
    # Imported here: the CLI starts fast, and tests can stub the loop.
    # train_and_evaluate joins the processes of a multi-host job (sharding.initialize_distributed).
    from kmri_jax.train import loop

    overrides = [a for a in argv if a.startswith(_PREFIX)]
    log.info("workdir %s, overrides %s", workdir, overrides or "none")
    return run_command(_PROG, lambda: loop.train_and_evaluate(config, workdir))


if __name__ == "__main__":
    sys.exit(main())
