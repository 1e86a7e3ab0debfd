"""Monitoring: history.csv (columns, resume without duplicates), TensorBoard events, grids,
progress line."""

from __future__ import annotations

import csv
import io
import pathlib
import struct
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto import event_pb2

from kmri_jax.train.monitoring import (
    HISTORY_COLUMNS,
    History,
    Monitor,
    Progress,
    image_grid,
    log_magnitude,
)

SEED_COLUMNS = ["epoch", "train_loss", "val_loss", "val_SSIM", "val_PSNR", "lr", "time_s"]


def _read_events(logdir: pathlib.Path) -> list[Any]:
    """All events of every ``events.out.tfevents.*`` file under ``logdir``.

    TFRecord framing: uint64 length, uint32 crc(length), payload, uint32 crc(payload).
    """
    events = []
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            payload = data[pos + 12 : pos + 12 + length]
            assert len(payload) == length, f"truncated record in {path}"
            events.append(event_pb2.Event.FromString(payload))
            pos += 12 + length + 4
    return events


def _row(epoch: int, loss: float) -> dict[str, float]:
    return dict(
        epoch=epoch, train_loss=loss, val_loss=loss + 1, val_SSIM=0.5, val_PSNR=20.0,
        lr=1e-3, time_s=12.34,
    )


def test_history_columns_and_resume_without_duplicates(tmp_path: pathlib.Path) -> None:
    assert list(HISTORY_COLUMNS) == SEED_COLUMNS
    history = History(tmp_path, enabled=True)
    for epoch in (1, 2, 3):
        history.append(**_row(epoch, 0.1 * epoch))
    # Resumed from the epoch-2 checkpoint: epoch 3 is run again, then 4.
    resumed = History(tmp_path, enabled=True)
    assert resumed.epochs() == [1, 2, 3]
    resumed.append(**_row(3, 0.25))
    resumed.append(**_row(4, 0.2))
    with (tmp_path / "history.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == SEED_COLUMNS
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert float(rows[3][1]) == pytest.approx(0.25)  # the rerun's epoch 3
    assert float(rows[1][2]) == pytest.approx(1.1) and float(rows[1][6]) == pytest.approx(12.3)


def test_history_disabled_writes_nothing(tmp_path: pathlib.Path) -> None:
    History(tmp_path, enabled=False).append(**_row(1, 0.1))
    assert not (tmp_path / "history.csv").exists()


def test_tensorboard_events_are_written_and_readable(tmp_path: pathlib.Path) -> None:
    truth = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (2, 8, 1))  # [N=2, 8, 8]
    grid = image_grid([0.5 * truth, truth, truth], pad=2)
    with Monitor(tmp_path, enabled=True) as monitor:
        monitor.scalar("train/loss", np.float32(0.5), 10)
        monitor.scalars({"SSIM": 0.8, "PSNR": 25.0}, 20, prefix="val/")
        monitor.image("val/magnitude", grid, 20)
        monitor.text("config", "```\nlr: 0.001\n```")
        monitor.hparams({"lr": 1e-3, "loss": "masked_l1", "shape": (8, 8)}, {"hparams/SSIM": 0.8})
    events = _read_events(tmp_path / "tensorboard")
    values = {(v.tag, e.step): v for e in events for v in e.summary.value}
    assert values[("train/loss", 10)].simple_value == pytest.approx(0.5)
    assert values[("val/SSIM", 20)].simple_value == pytest.approx(0.8)
    assert values[("val/PSNR", 20)].simple_value == pytest.approx(25.0)
    encoded = values[("val/magnitude", 20)].image
    png = np.asarray(Image.open(io.BytesIO(encoded.encoded_image_string)))
    assert (encoded.height, encoded.width) == grid.shape == (2 * 8 + 2, 3 * 8 + 4)
    assert png[..., 0][:8, 10:18].max() == 255 and png[..., 0][:8, :8].max() in (127, 128)
    text = values[("config/text_summary", 0)].tensor.string_val[0].decode()
    assert "lr: 0.001" in text
    assert any("_hparams_/session_start_info" == tag for tag, _ in values)


def test_monitor_disabled_writes_nothing(tmp_path: pathlib.Path) -> None:
    with Monitor(tmp_path, enabled=False) as monitor:
        monitor.scalar("x", 1.0, 0)
    assert not (tmp_path / "tensorboard").exists()


def test_image_grid_layout_and_scaling() -> None:
    a = np.full((2, 3, 4), 2.0)
    b = np.full((2, 3, 4), 4.0)
    grid = image_grid([a, b], pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1)
    np.testing.assert_allclose(grid[:3, :4], 0.5)  # row scale: max of the row (4)
    np.testing.assert_allclose(grid[:3, 5:], 1.0)
    np.testing.assert_allclose(grid[3, :], 1.0)  # padding
    k = np.zeros((1, 4, 4), np.complex64)
    k[0, 2, 2] = np.e - 1
    np.testing.assert_allclose(log_magnitude(k)[0, 2, 2], 1.0, rtol=1e-6)
    tile = image_grid([log_magnitude(k)], normalize="tile")
    assert tile.min() == 0.0 and tile.max() == 1.0


def test_progress_line_reports_rate_and_eta() -> None:
    lines: list[str] = []
    clock = iter([100.0, 102.0])  # 10 steps in 2 s
    progress = Progress(total_steps=30, batch_size=8, every=10, print_fn=lines.append, enabled=True)
    import kmri_jax.train.monitoring as monitoring

    real = monitoring.time.perf_counter
    monitoring.time.perf_counter = lambda: next(clock)  # type: ignore[assignment]
    try:
        assert progress.update(0, epoch=1, loss=1.0) is None  # starts the clock
        assert progress.update(5, epoch=1, loss=1.0) is None  # not due
        stats = progress.update(10, epoch=1, loss=np.float32(0.25))
    finally:
        monitoring.time.perf_counter = real  # type: ignore[assignment]
    assert stats is not None
    assert stats.samples_per_s == pytest.approx(40.0)  # 8 samples / 0.2 s
    assert stats.eta_s == pytest.approx(4.0)  # 20 steps * 0.2 s
    assert lines == [stats.line]
    assert "step 10/30" in stats.line and "epoch 1" in stats.line and "loss 0.25" in stats.line
    assert "40.0 samples/s" in stats.line and "ETA 0:00:04" in stats.line


def test_progress_restart_leaves_time_between_steps_out() -> None:
    """After restart() the next update only starts the clock: an evaluation between two log
    lines does not slow the reported rate (10 steps in 2 s, then 60 s of evaluation)."""
    lines: list[str] = []
    clock = iter([100.0, 102.0, 162.0, 164.0])
    progress = Progress(total_steps=40, batch_size=8, every=10, print_fn=lines.append, enabled=True)
    import kmri_jax.train.monitoring as monitoring

    real = monitoring.time.perf_counter
    monitoring.time.perf_counter = lambda: next(clock)  # type: ignore[assignment]
    try:
        progress.update(0, epoch=1, loss=1.0)
        first = progress.update(10, epoch=1, loss=1.0)
        progress.restart()  # the evaluation ran here, from 102 s to 162 s
        assert progress.update(11, epoch=2, loss=1.0) is None  # starts the clock again
        second = progress.update(20, epoch=2, loss=1.0)
    finally:
        monitoring.time.perf_counter = real  # type: ignore[assignment]
    assert first.samples_per_s == pytest.approx(40.0)
    assert second.samples_per_s == pytest.approx(8 / (2.0 / 9))  # 9 steps in 2 s
    assert len(lines) == 2
