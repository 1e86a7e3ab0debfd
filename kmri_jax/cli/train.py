"""``kmri-train``: train a U-Net from an experiment config.

Usage::

    kmri-train --config experiments/quickstart.py --workdir runs/quick
    kmri-train --config experiments/seed_replica.py:/data/ds005616 --workdir runs/seed \\
        --config.batch_size=16 --config.model.base_channels=16

``--config FILE[:ARG]`` loads ``FILE`` and calls its ``get_config(ARG)`` (``get_config()``
without ``:ARG``). Each ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides one
existing field, parsed as the field's type; an unknown key is an error. Rerunning with the
same ``--workdir`` resumes from its latest checkpoint. Also ``python -m kmri_jax.cli.train``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import logging
import pathlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections

from kmri_jax.cli.common import run_command

__all__ = ["ConfigError", "apply_overrides", "load_config", "main", "parse_args"]

log = logging.getLogger("kmri_jax")

_PROG = "kmri-train"
_OVERRIDE_PREFIX = "--config."
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A config file or override the user gave cannot be used; the message says why."""


# -- loading -----------------------------------------------------------------------------------


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads ``FILE[:ARG]``: imports ``FILE`` and returns ``get_config(ARG)``.

    Raises:
      ConfigError: missing file, no ``get_config``, an error inside it, or a non-ConfigDict.
    """
    path_text, sep, arg = spec.partition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path_text!r} (expected a Python file such as "
            "experiments/quickstart.py, optionally followed by :ARG)"
        )
    module_spec = importlib.util.spec_from_file_location(f"_kmri_config_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import config file {path_text!r} (is it a .py file?)")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"config file {path_text!r} failed to import: {_describe(e)}") from e
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {path_text!r} defines no get_config() function")
    try:
        config = get_config(arg) if sep else get_config()
    except Exception as e:
        what = f"get_config({arg!r})" if sep else "get_config()"
        raise ConfigError(f"{what} in {path_text!r} failed: {_describe(e)}") from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"get_config() in {path_text!r} returned {type(config).__name__}, "
            "expected an ml_collections.ConfigDict"
        )
    return config


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# -- overrides ---------------------------------------------------------------------------------


def _leaf_keys(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[str]:
    """Every settable dotted key of ``config`` (nested ConfigDicts expanded)."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _unknown_key(config: ml_collections.ConfigDict, key: str) -> ConfigError:
    keys = list(_leaf_keys(config))
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if not close:  # e.g. the last part is right but the group is wrong
        last = key.rsplit(".", 1)[-1]
        close = [k for k in keys if k.rsplit(".", 1)[-1] == last][:3]
    hint = f"; did you mean {', '.join('config.' + k for k in close)}?" if close else ""
    return ConfigError(f"unknown config key 'config.{key}'{hint}")


def _parse_value(text: str, field_type: type, key: str) -> Any:
    """``text`` as a value of ``field_type`` (the type of the field being overridden)."""
    if text.strip() == "None":
        return None
    if field_type is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ConfigError(f"config.{key} is a bool: expected true or false, got {text!r}")
    if field_type is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"config.{key} is an int: got {text!r}") from None
    if field_type is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"config.{key} is a float: got {text!r}") from None
    if field_type is str:
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if field_type in (tuple, list):
            raise ConfigError(
                f"config.{key} is a {field_type.__name__}: expected e.g. '(1, 2)', got {text!r}"
            ) from None
        return text  # An untyped (None) field: keep the string.
    if field_type in (tuple, list) and not isinstance(value, (tuple, list)):
        value = (value,)
    return value


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]
) -> ml_collections.ConfigDict:
    """Sets ``config.<key> = <value>`` for each ``(dotted key, text)``, in place; returns it.

    Values are parsed as the type of the existing field (bool: true/false, int, float, str,
    tuple/list as Python literals; ``None`` for any field).

    Raises:
      ConfigError: an unknown key (with close valid keys), a group given a value, or a value
        that does not parse as the field's type.
    """
    for key, text in overrides:
        *groups, leaf = key.split(".")
        node = config
        for i, part in enumerate(groups):
            child = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
            if not isinstance(child, ml_collections.ConfigDict):
                error = _unknown_key(config, key)
                if part in node:
                    error = ConfigError(f"{error} (config.{'.'.join(groups[: i + 1])} is a value)")
                raise error
            node = child
        if not leaf or leaf not in node:
            raise _unknown_key(config, key)
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise ConfigError(
                f"config.{key} is a group; set one of its fields, e.g. "
                f"config.{next(iter(_leaf_keys(node[leaf], key + '.')), key)}"
            )
        value = _parse_value(text, node.get_type(leaf), key)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"cannot set config.{key} to {text!r}: {e}") from None
    return config


# -- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Train the k-space U-Net from an experiment config "
        "(resumes from the latest checkpoint in --workdir).",
        epilog="Override config fields with --config.KEY=VALUE, e.g. --config.batch_size=16.",
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE[:ARG]",
        help="experiment config file, e.g. experiments/quickstart.py or FILE:ARG",
    )
    parser.add_argument(
        "--workdir", required=True, metavar="DIR",
        help="run directory: checkpoints, TensorBoard events, history.csv",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """Splits ``argv`` into ``--config``/``--workdir`` and ``(key, value)`` overrides.

    Exits with status 2 and a usage message on malformed arguments (argparse's behaviour).
    """
    parser = _parser()
    rest: list[str] = []
    overrides: list[tuple[str, str]] = []
    args_iter = iter(argv)
    plain: list[str] = []
    for arg in args_iter:
        if arg.startswith(_OVERRIDE_PREFIX):
            body = arg[len(_OVERRIDE_PREFIX) :]
            key, eq, value = body.partition("=")
            if not eq:
                value = next(args_iter, None)  # type: ignore[assignment]
                if value is None:
                    parser.error(f"{arg} needs a value: {arg}=VALUE")
            if not key:
                parser.error(f"empty config key in {arg!r}")
            overrides.append((key, value))
        else:
            plain.append(arg)
    namespace, rest = parser.parse_known_args(plain)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return namespace, overrides


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Orbax and others log through absl at INFO on every save; keep the terminal readable.
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notices


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``kmri-train``; returns the exit status (0 ok, 1 run failed, 2 bad usage/config)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = parse_args(argv)
    try:
        config = apply_overrides(load_config(args.config), overrides)
    except ConfigError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2
    _configure_logging()
    # Imported here: the CLI starts fast, and tests can stub the loop.
    # train_and_evaluate joins the processes of a multi-host job (sharding.initialize_distributed).
    from kmri_jax.train import loop

    log.info("config %s, workdir %s, overrides %s", args.config, args.workdir, overrides or "none")
    return run_command(_PROG, lambda: loop.train_and_evaluate(config, args.workdir))


if __name__ == "__main__":
    sys.exit(main())
