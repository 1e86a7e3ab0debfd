"""PNG figures of the commands (matplotlib, Agg backend, written atomically).

- :func:`simulation_preview`: breathing trace at the line times with acquired lines marked,
  corrupted log k-space, clean and corrupted images of one slice.
- :func:`inference_figure`: corrupted / corrected / ground truth as images and log k-space of
  one slice, plus a reformat across slices (the axial plane for sagittal slices).
- :func:`metric_plots`: SSIM/PSNR/NRMSE of input and output against A, f, R and SNR.
- :func:`severity_figure`: one slice corrupted at A = 2, 5, 8 px, corrected, and the truth.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kmri_jax import sim  # noqa: E402
from kmri_jax.tasks.volumes import atomic_output  # noqa: E402
from kmri_jax.train.monitoring import log_magnitude  # noqa: E402

__all__ = ["inference_figure", "metric_plots", "severity_figure",
           "simulation_preview"]


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _image(ax: plt.Axes, img: np.ndarray | None, title: str, vmax: float | None = None,
           cmap: str = "gray", aspect: str = "equal") -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    if img is None:
        ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
        return
    ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")


def simulation_preview(path: str | os.PathLike[str], slices: np.ndarray, corrupted,
                       *, tr: float, te: float, params, title: str = "",
                       slice_index: int | None = None) -> Path:
    """Preview of one slice (default: the middle one) of a simulated volume.

    Args:
      slices: ``[n, ny, nx]`` clean slices.
      corrupted: :class:`kmri_jax.sim.Corrupted` with numpy ``[n, ...]`` leaves.
    """
    i = slices.shape[0] // 2 if slice_index is None else slice_index
    ny = slices.shape[1]
    times = getattr(corrupted, "times", None)
    t = np.arange(ny) * tr + te if times is None else np.asarray(times[i])
    mask = np.asarray(corrupted.mask[i], bool)
    disp = np.asarray(corrupted.displacement[i])
    order = np.argsort(t, kind="stable")
    fig = plt.figure(figsize=(12, 7))
    grid = fig.add_gridspec(2, 3, height_ratios=(1, 1.6), hspace=0.4)
    ax = fig.add_subplot(grid[0, :2])
    ax.plot(t[order], disp[order], color="0.6", lw=0.8, label="readout displacement")
    ax.scatter(t[mask], disp[mask], s=8, color="tab:red", label=f"acquired ({mask.sum()}/{ny})",
               zorder=3)
    ax.scatter(t[~mask], disp[~mask], s=5, color="0.75", label="skipped", zorder=2)
    extra = []
    for name, label, unit in (("displacement_pe", "phase-encode displacement", "px"),
                              ("rotation_deg", "rotation", "deg"),
                              ("off_resonance_hz", "off-resonance", "Hz")):
        values = getattr(corrupted, name, None)
        if values is not None and np.any(np.asarray(values[i]) != 0):
            ax.plot(t[order], np.asarray(values[i])[order], lw=0.8, label=f"{label} ({unit})")
            extra.append(label)
    ax.set_xlabel("line acquisition time (s)")
    ax.set_ylabel("displacement (px)" + (" / rotation (deg)" if "rotation" in extra else ""))
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"breathing trace: A={params.amplitude_px:g} px, f={params.rate_bpm:g}/min, "
                 f"R={params.acceleration:g}, SNR={params.snr_db:g} dB, TR={tr:g} s", fontsize=9)
    ax = fig.add_subplot(grid[0, 2])  # the ordering: when each phase-encode line was acquired
    ax.scatter(t[mask], np.flatnonzero(mask), s=6, color="tab:red")
    ax.set_xlabel("acquisition time (s)")
    ax.set_ylabel("phase-encode line ky")
    ax.set_title("phase-encode ordering (acquired lines)", fontsize=9)
    clean = slices[i]
    bad = np.asarray(sim.magnitude_image(corrupted.kspace[i]))
    vmax = float(clean.max()) or 1.0
    _image(fig.add_subplot(grid[1, 0]), log_magnitude(corrupted.kspace[i], dynamic_range=1e4),
           "corrupted k-space, log|K|", cmap="viridis")
    _image(fig.add_subplot(grid[1, 1]), clean, f"clean (slice {i})", vmax)
    _image(fig.add_subplot(grid[1, 2]), bad, "corrupted |ifft2c(K_c)|", vmax)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def inference_figure(path: str | os.PathLike[str], *, images: Mapping[str, np.ndarray | None],
                     kspaces: Mapping[str, np.ndarray | None], reformats: Mapping[str, np.ndarray |
                     None], slice_index: int, reformat_label: str,
                     metrics: Mapping[str, Mapping[str, float]] | None = None,
                     title: str = "") -> Path:
    """Three columns (corrupted, corrected, ground truth) x rows (image, log k-space, reformat).

    ``images``/``kspaces`` hold one ``[ny, nx]`` slice per column (None: not available);
    ``reformats`` one image per column across slices. ``metrics[column]`` are shown in titles.
    """
    columns = ("corrupted", "corrected", "ground truth")
    fig, axes = plt.subplots(3, 3, figsize=(12, 10))
    ref = images.get("ground truth")
    if ref is None:
        ref = images["corrupted"]
    vmax = float(np.max(ref)) or 1.0
    for j, name in enumerate(columns):
        label = name
        m = (metrics or {}).get(name)
        if m:
            label += f"\nSSIM {m['ssim']:.3f}  PSNR {m['psnr']:.2f} dB"
        _image(axes[0, j], images.get(name), f"{label}\n(slice {slice_index})", vmax)
        k = kspaces.get(name)
        _image(axes[1, j], None if k is None else log_magnitude(k, dynamic_range=1e4), f"{name}: log|K|",
               cmap="viridis")
        _image(axes[2, j], reformats.get(name), f"{name}: {reformat_label}", vmax, aspect="auto")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def metric_plots(path: str | os.PathLike[str], rows: Sequence[Mapping[str, float]], *,
                 methods: Sequence[tuple[str, str]] = (("input", "corrupted input"),
                                                       ("output", "network output"))) -> Path:
    """Mean ± sd of each method's SSIM/PSNR/NRMSE against each of A, f, R, SNR.

    ``rows``: one mapping per evaluated sample with keys ``A, f, R, SNR`` and ``<prefix>_<m>``
    for each ``(prefix, label)`` of ``methods`` and ``m`` in ssim, psnr, nrmse.
    """
    params = ("A", "f", "R", "SNR")
    units = {"A": "A (px)", "f": "f (breaths/min)", "R": "R (acceleration)", "SNR": "SNR (dB)"}
    names = ("ssim", "psnr", "nrmse")
    fig, axes = plt.subplots(3, 4, figsize=(15, 9), squeeze=False)
    for j, p in enumerate(params):
        values = np.asarray([r[p] for r in rows], float)
        levels = np.unique(values)
        for i, m in enumerate(names):
            ax = axes[i, j]
            for k, (prefix, label) in enumerate(methods):
                data = np.asarray([r[f"{prefix}_{m}"] for r in rows], float)
                mean = [np.nanmean(data[values == v]) for v in levels]
                sd = [np.nanstd(data[values == v]) for v in levels]
                ax.errorbar(levels, mean, yerr=sd, marker="o", capsize=3, color=f"C{k}",
                            label=label)
            ax.set_xlabel(units[p])
            ax.set_ylabel(m.upper() + (" (dB)" if m == "psnr" else ""))
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle("metrics vs corruption parameters (mean ± sd over test slices)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def severity_figure(path: str | os.PathLike[str], panels: Sequence[Mapping[str, object]]) -> Path:
    """Rows: one motion amplitude each; columns: each method's image, then the ground truth.

    ``panels[i]`` holds ``label`` (str), ``columns`` (``(title, [ny, nx] image)`` pairs, e.g.
    the corrupted input, the oracle, the estimate, the network) and ``truth`` (``[ny, nx]``).
    """
    n = 1 + max(len(p["columns"]) for p in panels)
    fig, axes = plt.subplots(len(panels), n, figsize=(3.4 * n, 3.2 * len(panels)), squeeze=False)
    for i, p in enumerate(panels):
        truth = np.asarray(p["truth"])
        vmax = float(truth.max()) or 1.0
        for j, (title, image) in enumerate(p["columns"]):
            _image(axes[i, j], np.asarray(image), f"{p['label']}: {title}" if j == 0 else title,
                   vmax)
        _image(axes[i, n - 1], truth, "ground truth", vmax)
    fig.suptitle("motion severity: the same slice at increasing breathing amplitude, every "
                 "method", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
