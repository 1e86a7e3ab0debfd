"""A JAX profiler trace of a few training steps of a real run, for TensorBoard's Profile tab.

``config.runtime.profile_steps = N`` traces steps ``first + 1 .. first + N`` of this run, where
``first = config.runtime.profile_start_step`` counts from the step the run started (or
resumed) at, so the trace leaves out compilation. The trace holds the whole loop as it runs:
input pipeline, host-to-device copies, the step's XLA ops, evaluation if one falls inside.
It is written to ``<workdir>/tensorboard/plugins/profile/<time>/<host>.xplane.pb`` (every
process writes its own host file); view it with ``pip install tensorboard-plugin-profile``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax

from kmri_jax.config import ConfigValueError

__all__ = ["StepTrace"]

log = logging.getLogger(__name__)


class StepTrace:
    """Starts and stops ``jax.profiler`` around a window of steps; a context manager.

    Args:
      log_dir: the TensorBoard folder the trace goes under.
      start_step: the run's first step (0, or the step it resumed at).
      skip: steps to let pass first (``config.runtime.profile_start_step``).
      steps: steps to trace (``config.runtime.profile_steps``; 0 = off).
    """

    def __init__(self, log_dir: str | Path, *, start_step: int, skip: int, steps: int):
        if skip < 0 or steps < 0:
            raise ConfigValueError(
                "config.runtime.profile_start_step and config.runtime.profile_steps must be "
                f">= 0 (profile_steps=0: no trace); got {skip} and {steps}")
        self.log_dir = Path(log_dir)
        self.start_step = start_step
        self.first, self.last = start_step + skip, start_step + skip + steps
        self.enabled, self.active = steps > 0, False

    def __enter__(self) -> StepTrace:
        self._maybe_start(self.start_step)  # With no steps to skip, from the first step on.
        return self

    def after_step(self, step: int, outputs: Any) -> None:
        """Call after each step with its (device) outputs; ``step`` = steps done so far."""
        if not self.enabled:
            return
        if self.active and step >= self.last:
            jax.block_until_ready(outputs)  # The traced steps' device work ends in the trace.
            self._stop()
        elif not self.active:
            self._maybe_start(step)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self._stop()

    def _maybe_start(self, step: int) -> None:
        if self.enabled and step == self.first:
            jax.profiler.start_trace(str(self.log_dir))
            self.active = True
            log.info("profiling steps %d-%d into %s", self.first + 1, self.last, self.log_dir)

    def _stop(self) -> None:
        jax.profiler.stop_trace()
        self.active = False
        log.info("profile written under %s/plugins/profile", self.log_dir)
