"""Shared pieces of the ``kmri-simulate`` / ``kmri-infer`` / ``kmri-evaluate`` entry points:
logging set-up, the compilation cache, and running a command with user errors printed as
one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    logging.getLogger("kmri_jax").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)


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
        return 1
    return 0
