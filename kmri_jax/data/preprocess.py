"""Volume -> clean 2-D slices, the seed's preprocessing (configurable).

For one 3-D volume ``v`` (float, as stored in the file, scaling applied):

1. **Slicing axis.** Slices are taken along array axis ``axis`` (default 0). In a RAS-like
   NIfTI (array axes left->right, posterior->anterior, inferior->superior; nibabel's canonical
   orientation, and ds005616's sagittal T2w), axis 0 is left-right, so its slices are sagittal
   planes ``[A-P, S-I]``: rows = anterior-posterior (phase-encode lines), columns =
   inferior-superior (readout). ``reorient=True`` first turns the volume to the closest
   canonical RAS orientation (off by default: the seed indexed the stored array).
2. **Clip** at the ``clip_percentile`` (99.5) percentile of the whole volume: ``v = min(v, c)``.
3. **Rescale** between the ``low_percentile`` (2) and ``high_percentile`` (99) percentiles of the
   clipped volume: ``x = clip((v - p_lo) / (p_hi - p_lo), 0, 1)``. Percentiles are numpy's
   default (linear interpolation) over all voxels of the volume, so every slice of a volume
   shares one intensity scale.
4. **Blank** the first and last ``blank_rows`` rows of each slice (scanner annotations; seed 12,
   default 0 = off).
5. **Crop / pad** each slice to ``(ny, nx)`` (seed 424 x 736): a dimension that is too large is
   centre-cropped (start ``(n - target) // 2``); one that is too small is zero-padded at the
   bottom / right, so the valid region is the top-left ``(valid_rows, valid_cols)``.

Which slices are kept (``slices``): ``"all"``; ``"central"``: the ``round(central_fraction * n)``
(at least 1) slices centred on ``n // 2``; ``"content"``: slices whose preprocessed valid region
has a mean of at least ``content_threshold``.

A volume is rejected (``DataError``) when it is not 3-D (trailing length-1 axes are dropped
first), when its slice plane is smaller than ``min_size`` in either dimension (smaller than the
target is normal and padded; below ``min_size`` it is almost surely a wrong file or a wrong
slicing axis), when it holds NaN/Inf voxels, or when it is constant (``p_hi <= p_lo``).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Any, Literal

import nibabel as nib
import numpy as np

from kmri_jax.data.errors import DataError, skip_hint

SliceSelection = Literal["all", "central", "content"]


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """Preprocessing options (defaults: the seed's, except ``blank_rows``; see module doc)."""

    ny: int = 424
    nx: int = 736
    axis: int = 0
    reorient: bool = False
    clip_percentile: float = 99.5
    low_percentile: float = 2.0
    high_percentile: float = 99.0
    blank_rows: int = 0
    slices: SliceSelection = "all"
    central_fraction: float = 0.5
    content_threshold: float = 0.05
    min_size: int = 32

    def __post_init__(self) -> None:
        bad = None
        if self.ny < 1 or self.nx < 1:
            bad = f"target shape ({self.ny}, {self.nx}) must be positive"
        elif self.axis not in (0, 1, 2):
            bad = f"axis {self.axis} must be 0, 1 or 2"
        elif not 0 <= self.low_percentile < self.high_percentile <= 100:
            bad = "need 0 <= low_percentile < high_percentile <= 100"
        elif not 0 < self.clip_percentile <= 100:
            bad = "clip_percentile must be in (0, 100]"
        elif self.blank_rows < 0 or self.min_size < 1:
            bad = "blank_rows must be >= 0 and min_size >= 1"
        elif self.slices not in ("all", "central", "content"):
            bad = f"slices={self.slices!r} must be 'all', 'central' or 'content'"
        elif not 0 < self.central_fraction <= 1:
            bad = "central_fraction must be in (0, 1]"
        if bad:
            raise DataError(None, f"invalid preprocessing option: {bad}", "correct the option")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Any) -> PreprocessOptions:
        """The options among ``values``' keys (e.g. a run's ``config.data``); others ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclasses.dataclass(frozen=True)
class PreparedVolume:
    """The kept slices of one volume.

    Attributes:
      images: ``[n, ny, nx] float32`` in [0, 1], zero-padded bottom/right.
      slice_indices: ``[n] int32`` index of each kept slice along the slicing axis.
      valid_shape: (rows, cols) of the valid region, the same for every slice of a volume.
      n_slices_total: slices along the axis before selection.
    """

    images: np.ndarray
    slice_indices: np.ndarray
    valid_shape: tuple[int, int]
    n_slices_total: int


def load_volume(path: str | os.PathLike[str], *, reorient: bool = False) -> np.ndarray:
    """Read a NIfTI file as a 3-D float32 array (trailing length-1 axes dropped).

    Raises:
      DataError: unreadable/corrupt/truncated file, or not 3-D.
    """
    path = os.fspath(path)
    try:
        img = nib.load(path)
        if reorient:
            img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except FileNotFoundError:
        raise DataError(path, "file does not exist (a broken link, or a git-annex file that was "
                        "not fetched?)", "fetch it (e.g. `datalad get`) or remove it") from None
    except (EOFError, zlib.error, OSError, ValueError, nib.filebasedimages.ImageFileError) as e:
        raise DataError(path, f"cannot read the NIfTI file, it is corrupt or truncated "
                        f"({type(e).__name__}: {e})",
                        "re-download the file (e.g. `datalad get`) or delete it, "
                        + skip_hint()) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(path, f"volume is {data.ndim}-D with shape {data.shape}; expected one "
                        "3-D volume", "extract one 3-D volume (e.g. nibabel `img.slicer[..., 0]` "
                        "or `fslroi`) or remove the file, " + skip_hint())
    return data


def intensity_window(volume: np.ndarray, opts: PreprocessOptions) -> tuple[float, float, float]:
    """(clip value, p_lo, p_hi) of a volume, computed in float64."""
    v = volume.astype(np.float64, copy=False)
    clip = float(np.percentile(v, opts.clip_percentile))
    clipped = np.minimum(v, clip)
    lo, hi = np.percentile(clipped, [opts.low_percentile, opts.high_percentile])
    return clip, float(lo), float(hi)


def crop_or_pad(image: np.ndarray, ny: int, nx: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre-crop too-large and zero-pad (bottom/right) too-small dimensions of ``[..., H, W]``.

    Returns:
      The ``[..., ny, nx]`` array and the valid (rows, cols) at its top-left.
    """
    h, w = image.shape[-2:]
    r0 = (h - ny) // 2 if h > ny else 0
    c0 = (w - nx) // 2 if w > nx else 0
    vr, vc = min(h, ny), min(w, nx)
    out = np.zeros(image.shape[:-2] + (ny, nx), dtype=np.float32)
    out[..., :vr, :vc] = image[..., r0:r0 + vr, c0:c0 + vc]
    return out, (vr, vc)


def select_slices(n: int, means: np.ndarray | None, opts: PreprocessOptions) -> np.ndarray:
    """Indices of the kept slices (see module doc)."""
    if opts.slices == "all":
        return np.arange(n)
    if opts.slices == "central":
        k = min(n, max(1, int(round(opts.central_fraction * n))))
        start = n // 2 - k // 2
        return np.arange(start, start + k)
    assert means is not None
    return np.flatnonzero(means >= opts.content_threshold)


def preprocess_volume(volume: np.ndarray, opts: PreprocessOptions, *, path: str = ""
                      ) -> PreparedVolume:
    """Preprocess a 3-D volume into its kept slices (see module doc).

    Args:
      volume: ``[X, Y, Z]`` array (any float/int dtype).
      opts: options.
      path: the file, named in error messages.

    Raises:
      DataError: too small, non-finite or constant volume.
    """
    if volume.ndim != 3:
        raise DataError(path, f"volume has shape {volume.shape}; expected 3-D",
                        "pass one 3-D volume")
    vol = np.moveaxis(volume, opts.axis, 0)
    n, h, w = vol.shape
    if h < opts.min_size or w < opts.min_size or n < 1:
        raise DataError(path, f"slice plane is {h}x{w} (volume {volume.shape}, slicing axis "
                        f"{opts.axis}), smaller than the minimum {opts.min_size}x{opts.min_size}",
                        "check the slicing axis (--axis) and that this is the right file, lower "
                        "--min-size, or " + skip_hint().removeprefix("or "))
    finite = np.isfinite(vol)
    if not finite.all():
        bad = int(vol.size - np.count_nonzero(finite))
        raise DataError(path, f"volume has {bad} NaN/Inf voxel(s)",
                        "repair or remove the file (e.g. replace non-finite voxels with 0 and "
                        "save again), " + skip_hint())
    clip, lo, hi = intensity_window(vol, opts)
    if not hi > lo:
        raise DataError(path, f"volume has no intensity range (constant, or its "
                        f"{opts.low_percentile}th and {opts.high_percentile}th percentiles are "
                        f"both {lo:g})", "remove the file (it holds no image), " + skip_hint())
    x = (np.minimum(vol.astype(np.float64), clip) - lo) / (hi - lo)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    if opts.blank_rows:
        x[:, :opts.blank_rows, :] = 0.0
        x[:, max(h - opts.blank_rows, 0):, :] = 0.0
    images, valid = crop_or_pad(x, opts.ny, opts.nx)
    means = images[:, :valid[0], :valid[1]].mean(axis=(1, 2)) if opts.slices == "content" else None
    keep = select_slices(n, means, opts)
    return PreparedVolume(images=np.ascontiguousarray(images[keep]),
                          slice_indices=keep.astype(np.int32), valid_shape=valid,
                          n_slices_total=n)


def prepare_volume_file(path: str | os.PathLike[str], opts: PreprocessOptions) -> PreparedVolume:
    """``load_volume`` then ``preprocess_volume``."""
    return preprocess_volume(load_volume(path, reorient=opts.reorient), opts, path=os.fspath(path))
