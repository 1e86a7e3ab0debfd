"""Stop a diverging run before it saves garbage.

Every train step reports ``finite`` (loss, gradient norm and the updated parameters all
finite). :class:`DivergenceWatch` folds those flags into the first bad step, its loss and its
gradient norm *on the device* (no host sync per step); the loop reads them where it syncs
anyway (log lines) and before anything is saved, and evaluation summaries are checked too. A
bad value raises :class:`TrainingDivergedError`: the run stops with exit status 1, and the
checkpoint saved before stays the latest and the best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections

__all__ = ["DivergenceWatch", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss, gradients, parameters or validation metrics became non-finite."""


@jax.jit
def _fold(seen: tuple[jax.Array, ...], metrics: Mapping[str, jax.Array]) -> tuple[jax.Array, ...]:
    step, loss, grad_norm = seen
    first = (step < 0) & ~metrics["finite"]
    return (jnp.where(first, metrics["step"], step), jnp.where(first, metrics["loss"], loss),
            jnp.where(first, metrics["grad_norm"], grad_norm))


class DivergenceWatch:
    """Tracks the first non-finite train step; :meth:`check` raises if there was one."""

    def __init__(self, config: ml_collections.ConfigDict, *, last_saved: int | None) -> None:
        self._config = config
        self.last_saved = last_saved
        self._seen = (jnp.asarray(-1, jnp.int32), jnp.asarray(0.0, jnp.float32),
                      jnp.asarray(0.0, jnp.float32))

    def update(self, metrics: Mapping[str, jax.Array]) -> None:
        """Fold one step's metrics in (asynchronous: dispatches one tiny device computation)."""
        self._seen = _fold(self._seen, {k: metrics[k] for k in ("finite", "step", "loss",
                                                                "grad_norm")})

    def saved(self, step: int) -> None:
        """Record that a checkpoint of ``step`` was saved (named in the message)."""
        self.last_saved = step

    def check(self) -> None:
        """Raise TrainingDivergedError if any step so far was not finite (waits for the steps)."""
        step, loss, grad_norm = (v.item() for v in jax.device_get(self._seen))
        if step >= 0:
            self._fail(f"at step {step} the loss is {loss:.4g} and the gradient norm "
                       f"{grad_norm:.4g} (non-finite values in the loss, gradients or updated "
                       "parameters)")

    def check_summary(self, step: int, summary: Mapping[str, float]) -> None:
        """Raise TrainingDivergedError if a validation metric of step ``step`` is not finite."""
        bad = {k: v for k, v in summary.items()
               if k.startswith("val_") and not math.isfinite(v)}
        if bad:
            shown = ", ".join(f"{k} {v}" for k, v in list(bad.items())[:4])
            self._fail(f"the evaluation at step {step} gave {shown}")

    def _fail(self, what: str) -> None:
        tc, model = self._config.train, self._config.model
        kept = (f"Nothing after step {self.last_saved} was saved: that checkpoint stays the "
                "latest and the best" if self.last_saved is not None
                else "No checkpoint was saved")
        hints = [f"a lower --config.train.learning_rate (now {tc.learning_rate:g})"]
        if str(model.compute_dtype) != "float32":
            hints.append(f"--config.model.compute_dtype=float32 (now {model.compute_dtype})")
        hints.append("checking the data for NaN or extreme values")
        raise TrainingDivergedError(
            f"training diverged: {what}. {kept}. Try {', '.join(hints)}; then rerun in a new "
            "--workdir (or resume this one, which starts again from its last checkpoint).")
