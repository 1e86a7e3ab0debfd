"""Shared pieces of the ``kmri-simulate`` / ``kmri-infer`` / ``kmri-evaluate`` entry points:
logging set-up, the compilation cache, and running a command with user errors printed as
one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    logging.getLogger("kmri_jax").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)


def add_corruption_arguments(p: argparse.ArgumentParser, *, when: str = "",
                             method_default: str | None = "breathmetrics") -> None:
    """The corruption options ``kmri-simulate`` and ``kmri-infer --input`` share: A, f, R, SNR,
    the breathing model, TR/TE and the seed. ``when``: e.g. ``"with --input: "``."""
    p.add_argument("--amplitude", "-A", type=float, default=5.0, metavar="PX",
                   help=f"{when}breathing displacement amplitude A in pixels (default 5; 0..100)")
    p.add_argument("--rate", "-f", type=float, default=15.0, metavar="BPM",
                   help=f"{when}breathing rate f in breaths/min (default 15; 1..60)")
    p.add_argument("--acceleration", "-R", type=float, default=4.0,
                   help=f"{when}undersampling factor R (default 4; 1..32, 1 = fully sampled)")
    p.add_argument("--snr", type=float, default=20.0, metavar="DB",
                   help=f"{when}signal-to-noise ratio in dB (default 20; -20..100)")
    p.add_argument("--method", default=method_default, choices=("breathmetrics", "sinusoidal"),
                   help=f"{when}breathing model (default "
                   f"{method_default or 'the checkpoint' + chr(39) + 's'})")
    p.add_argument("--tr", type=float, help=f"{when}repetition time in s (default: sidecar, "
                   "else 2.5)")
    p.add_argument("--te", type=float, help=f"{when}echo time in s (default: sidecar, else 0.03)")
    p.add_argument("--seed", type=int, default=0, help=f"{when}random seed (default 0)")


def is_user_error(e: BaseException) -> bool:
    """kmri_jax's own exception classes carry a full message meant for the user."""
    return type(e).__module__.startswith("kmri_jax.")


def use_compilation_cache() -> None:
    """The persistent XLA cache of training (``config.runtime.compilation_cache``), so that
    running a command again (e.g. once per volume) does not compile the same programs again.
    ``JAX_COMPILATION_CACHE_DIR`` moves it; ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off."""
    from kmri_jax.config import base_config
    from kmri_jax.train import runtime

    runtime.enable_compilation_cache(base_config().runtime.compilation_cache)


def run_command(prog: str, body: Callable[[], None]) -> int:
    """Run ``body``; 0 on success, 1 with ``prog: error: ...`` on stderr for a user error,
    130 on Ctrl-C. Other exceptions (bugs) propagate with their traceback."""
    try:
        body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if not is_user_error(e):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        _silence_teardown()
        return 1
    return 0


def _silence_teardown() -> None:
    """After a reported user error the process only exits: what libraries' asynchronous
    machinery prints while it is torn down (Orbax's unawaited coroutines after a failed
    checkpoint read, for one) would bury the one message, so it is dropped."""
    import gc
    import threading

    sys.unraisablehook = lambda *_: None
    sys.excepthook = lambda *_: None  # what C++ callbacks print through PyErr_Print
    threading.excepthook = lambda *_: None
    gc.collect()
