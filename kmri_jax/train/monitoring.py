"""What a run reports: TensorBoard events, ``history.csv``, and a terminal progress line.

Only process 0 writes (``jax.process_index() == 0``); on the other processes every method is
a no-op, so the loop calls them unconditionally.

- :class:`Monitor`: tensorboardX scalars, images, text and hparams under ``<workdir>/tensorboard``.
- :func:`image_grid`, :func:`log_magnitude`: side-by-side image panels (e.g. corrupted /
  corrected / ground truth) for :meth:`Monitor.image`.
- :class:`History`: ``<workdir>/history.csv`` with the seed's columns, safe to resume.
- :class:`Progress`: one line per log interval with step, epoch, loss, samples/s and ETA.
"""

from __future__ import annotations

import csv
import datetime
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import numpy as np
import tensorboardX
import tensorboardX.summary

__all__ = [
    "HISTORY_COLUMNS",
    "History",
    "Monitor",
    "Progress",
    "ProgressStats",
    "image_grid",
    "log_magnitude",
]

log = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_SSIM",
    "val_PSNR",
    "lr",
    "time_s",
)
"""The columns of the seed's training history CSV, in order."""


def _is_writer(enabled: bool | None) -> bool:
    return jax.process_index() == 0 if enabled is None else enabled


def _scalar(value: Any) -> float:
    """A Python float from a float, numpy or (0-d) JAX value (blocks on the device)."""
    return float(np.asarray(value))


# -- TensorBoard -------------------------------------------------------------------------------


class Monitor:
    """tensorboardX writer over ``<workdir>/tensorboard`` that only process 0 uses."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        purge_step: int | None = None,
        flush_secs: int = 30,
        enabled: bool | None = None,
    ) -> None:
        """
        Args:
          workdir: the run directory; events go to ``workdir/tensorboard``.
          purge_step: on resume, the restored step: TensorBoard hides the events at or after
            it that the interrupted run wrote, so curves do not double back.
          flush_secs: how often pending events reach the disk.
          enabled: force writing on (True) or off (False); None: process 0 only.
        """
        self.logdir = pathlib.Path(workdir) / "tensorboard"
        self._writer: tensorboardX.SummaryWriter | None = None
        if _is_writer(enabled):
            self._writer = tensorboardX.SummaryWriter(
                logdir=str(self.logdir), purge_step=purge_step, flush_secs=flush_secs
            )

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def scalar(self, tag: str, value: Any, step: int) -> None:
        """One scalar (float, numpy or 0-d JAX value)."""
        if self._writer is not None:
            self._writer.add_scalar(tag, _scalar(value), int(step))

    def scalars(self, values: Mapping[str, Any], step: int, *, prefix: str = "") -> None:
        """Several scalars, each under ``prefix + name`` (e.g. ``prefix="val/"``)."""
        for name, value in values.items():
            self.scalar(prefix + name, value, step)

    def image(self, tag: str, image: np.ndarray | jax.Array, step: int) -> None:
        """One image: ``[H, W]`` or ``[H, W, C]`` (C = 1, 3, 4), uint8 in [0, 255] or float in
        [0, 1] (floats are clipped)."""
        if self._writer is None:
            return
        img = np.asarray(image)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image must be [H, W] or [H, W, C in 1/3/4], got {img.shape}")
        if img.dtype != np.uint8:
            img = np.clip(img.astype(np.float32), 0.0, 1.0)
        self._writer.add_image(tag, img, int(step), dataformats="HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text, e.g. the config (wrap it in a code block to keep its layout)."""
        if self._writer is not None:
            self._writer.add_text(tag, text, int(step))

    def hparams(
        self, hparams: Mapping[str, Any], metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        """The run's hyperparameters and final metrics for TensorBoard's HParams tab.

        Values that are not bool/int/float/str are logged as their ``str``. Metric tags should
        differ from the ones logged with :meth:`scalar` (e.g. ``hparams/val_SSIM``).
        """
        if self._writer is None:
            return
        clean = {
            k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()
        }
        values = {k: _scalar(v) for k, v in metrics.items()}
        # Into this run's own event file: SummaryWriter.add_hparams would open a second writer,
        # whose file can take the same name as ours when created in the same second.
        for summary in tensorboardX.summary.hparams(clean, values):
            self._writer.file_writer.add_summary(summary, step)
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_magnitude(kspace: np.ndarray | jax.Array, *, dynamic_range: float | None = None
                  ) -> np.ndarray:
    """``log(1 + |K|)`` of complex k-space, for display: ``[..., H, W]`` complex -> float32.

    ``dynamic_range``: first scale ``|K|`` so that its maximum (over the last two axes) is this
    value, so that the picture does not depend on the data's units (figures use 1e4).
    """
    mag = np.abs(np.asarray(kspace))
    if dynamic_range is not None:
        top = mag.max(axis=(-2, -1), keepdims=True)
        mag = mag / np.where(top > 0, top, 1.0) * dynamic_range
    return np.log1p(mag).astype(np.float32)


def image_grid(
    columns: Sequence[np.ndarray | jax.Array],
    *,
    normalize: Literal["row", "tile"] = "row",
    pad: int = 2,
) -> np.ndarray:
    """Tiles ``[N, H, W]`` arrays into one float ``[N*(H+pad)-pad, C*(W+pad)-pad]`` image.

    Sample ``n`` of column ``c`` goes to row ``n``, column ``c``: e.g.
    ``image_grid([corrupted, corrected, ground_truth])`` with magnitude images.

    Args:
      columns: C real arrays ``[N, H, W]`` of the same shape (take ``abs`` / ``log_magnitude``
        of complex data first).
      normalize: ``"row"`` divides each row by its max (the columns of a sample share one
        scale, as for magnitude images compared with the ground truth); ``"tile"`` scales each
        tile to its own [min, max] (log k-space).
      pad: pixels of white between tiles.

    Returns:
      float32 in [0, 1], ready for :meth:`Monitor.image`.
    """
    if not columns:
        raise ValueError("image_grid needs at least one column")
    stack = np.stack([np.asarray(c, dtype=np.float32) for c in columns], axis=1)  # [N,C,H,W]
    if stack.ndim != 4:
        raise ValueError(f"columns must be [N, H, W] arrays, got {np.asarray(columns[0]).shape}")
    stack = np.nan_to_num(stack)
    if normalize == "row":
        lo = np.zeros_like(stack[:, :1, :1, :1])
        hi = np.max(np.abs(stack), axis=(1, 2, 3), keepdims=True)
    elif normalize == "tile":
        lo = np.min(stack, axis=(2, 3), keepdims=True)
        hi = np.max(stack, axis=(2, 3), keepdims=True)
    else:
        raise ValueError(f"normalize must be 'row' or 'tile', got {normalize!r}")
    tiles = np.clip((stack - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
    n, c, h, w = tiles.shape
    grid = np.ones((n * (h + pad) - pad, c * (w + pad) - pad), np.float32)
    for i in range(n):
        for j in range(c):
            grid[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = tiles[i, j]
    return grid


# -- history.csv -------------------------------------------------------------------------------


class History:
    """``<workdir>/history.csv`` with :data:`HISTORY_COLUMNS`, one row per epoch.

    Resuming keeps the rows already there. Writing epoch ``e`` drops any existing rows for
    epochs >= ``e`` first (they belong to an interrupted run that was rolled back to an
    earlier checkpoint), so the file never has duplicate epochs.
    """

    def __init__(self, workdir: str | os.PathLike[str], *, enabled: bool | None = None) -> None:
        """``enabled``: force writing on/off; None: process 0 only."""
        self.path = pathlib.Path(workdir) / "history.csv"
        self._enabled = _is_writer(enabled)

    def rows(self) -> list[dict[str, str]]:
        """The rows on disk, as strings (empty when there is no file)."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != HISTORY_COLUMNS:
                raise ValueError(
                    f"{self.path} has columns {reader.fieldnames}, expected "
                    f"{list(HISTORY_COLUMNS)}; move it away or use another --workdir."
                )
            return list(reader)

    def epochs(self) -> list[int]:
        """The epochs already recorded."""
        return [int(r["epoch"]) for r in self.rows()]

    def append(
        self,
        *,
        epoch: int,
        train_loss: float,
        val_loss: float,
        val_SSIM: float,  # noqa: N803 (the seed's column name)
        val_PSNR: float,  # noqa: N803
        lr: float,
        time_s: float,
    ) -> None:
        """Records one epoch (a no-op on processes other than 0)."""
        if not self._enabled:
            return
        row = {
            "epoch": str(int(epoch)),
            "train_loss": _fmt(train_loss),
            "val_loss": _fmt(val_loss),
            "val_SSIM": _fmt(val_SSIM),
            "val_PSNR": _fmt(val_PSNR),
            "lr": _fmt(lr),
            "time_s": f"{_scalar(time_s):.1f}",
        }
        existing = self.rows()
        kept = [r for r in existing if int(r["epoch"]) < epoch]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if existing and len(kept) == len(existing):
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, HISTORY_COLUMNS).writerow(row)
            return
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows([*kept, row])
        os.replace(tmp, self.path)


def _fmt(value: Any) -> str:
    return repr(_scalar(value))


# -- terminal progress -------------------------------------------------------------------------


class ProgressStats(NamedTuple):
    """Throughput over the last log interval (also worth logging to TensorBoard)."""

    step: int
    samples_per_s: float
    step_time_s: float
    eta_s: float
    line: str


class Progress:
    """Prints ``step 120/2000 (6%) | epoch 3 | loss 0.01234 | 85.3 samples/s | ETA 0:12:34``.

    The first :meth:`update` only starts the clock (it usually waits for compilation);
    afterwards one line is printed every ``every`` steps, from process 0.
    """

    def __init__(
        self,
        *,
        total_steps: int,
        batch_size: int,
        every: int = 50,
        print_fn: Callable[[str], None] = print,
        enabled: bool | None = None,
    ) -> None:
        """
        Args:
          total_steps: the step the run ends at (for the ETA).
          batch_size: the global batch size (samples per step, all devices).
          every: print every this many steps.
          print_fn: where lines go (``print`` by default; e.g. ``logging.info``).
          enabled: force printing on/off; None: process 0 only.
        """
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.total_steps = int(total_steps)
        self.batch_size = int(batch_size)
        self.every = int(every)
        self._print = print_fn
        self._enabled = _is_writer(enabled)
        self._last: tuple[int, float] | None = None

    def restart(self) -> None:
        """Start the clock again at the next :meth:`update`: time spent between steps (an
        evaluation, a checkpoint) is not counted as step time in the rate and the ETA."""
        self._last = None

    def due(self, step: int) -> bool:
        """Whether :meth:`update` at ``step`` will report (use it to skip fetching the loss)."""
        return self._last is None or step % self.every == 0 or step >= self.total_steps

    def update(
        self, step: int, *, epoch: int, loss: Any, extra: Mapping[str, Any] | None = None
    ) -> ProgressStats | None:
        """Call after each step (``step`` = steps done). Returns the stats when it reported."""
        if not self.due(step):
            return None
        now = time.perf_counter()
        if self._last is None:
            self._last = (step, now)
            return None
        last_step, last_time = self._last
        if step <= last_step:
            return None
        self._last = (step, now)
        step_time = (now - last_time) / (step - last_step)
        eta = max(self.total_steps - step, 0) * step_time
        rate = self.batch_size / step_time if step_time > 0 else math.inf
        parts = [
            f"step {step}/{self.total_steps} ({100 * step / max(self.total_steps, 1):.0f}%)",
            f"epoch {epoch}",
            f"loss {_scalar(loss):.5g}",
        ]
        parts += [f"{k} {_scalar(v):.4g}" for k, v in (extra or {}).items()]
        parts += [f"{rate:.1f} samples/s", f"ETA {datetime.timedelta(seconds=round(eta))}"]
        line = " | ".join(parts)
        if self._enabled:
            self._print(line)
        return ProgressStats(step, rate, step_time, eta, line)
