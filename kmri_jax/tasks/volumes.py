"""NIfTI volumes in and out for the commands: reading a volume as slices, writing a volume with
the header and affine of another, and writing any output file atomically.

Slicing. A volume ``[X, Y, Z]`` is cut along array ``axis`` (default 0, the training data's
sagittal axis in a RAS-like file); slice ``i`` is ``np.moveaxis(volume, axis, 0)[i]`` with rows
= phase-encode lines and columns = readout, exactly as :mod:`kmri_jax.data.preprocess` does.

Output data type. An output volume keeps the input's on-disk data type (``dtype="input"``):
for an integer type nibabel picks a scale factor (``scl_slope``/``scl_inter``) that covers the
float values, so the magnitudes are stored to about 1/65535 of their range (int16). Pass
``dtype="float32"`` to store float32 instead.

Atomic writes. Every file goes to a hidden temporary name in the target folder first and is
renamed into place only when complete, so an interrupted or failed command leaves no partial
output (the temporary file is removed on error).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from kmri_jax.data.errors import DataError
from kmri_jax.data.preprocess import load_volume
from kmri_jax.tasks.errors import TaskError

__all__ = ["atomic_output", "from_slices", "nifti_suffix", "read_volume", "to_slices",
           "write_volume_like"]

OUTPUT_DTYPES = ("input", "float32")


def nifti_suffix(path: str | os.PathLike[str]) -> str:
    """``".nii.gz"`` or ``".nii"`` for a NIfTI path; ``""`` for anything else."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return ext
    return ""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it to ``path`` on success,
    delete it on any error. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = nifti_suffix(path) or path.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A 3-D NIfTI volume as float32 (scaling applied) and its image object (header, affine).

    Raises:
      DataError: missing, unreadable or non-3-D file (one message naming the file).
    """
    data = load_volume(path)  # checks readability and 3-D (drops trailing length-1 axes)
    if not np.all(np.isfinite(data)):
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise DataError(path, f"volume has {bad} NaN/Inf voxel(s)",
                        "replace the non-finite voxels (e.g. with 0) and save the file again")
    return data, nib.load(os.fspath(path))


def to_slices(volume: np.ndarray, axis: int) -> np.ndarray:
    """``[X, Y, Z]`` -> ``[n, ny, nx]`` float32 slices along ``axis`` (a contiguous copy)."""
    if axis not in (0, 1, 2):
        raise TaskError(f"--axis must be 0, 1 or 2; got {axis}")
    return np.ascontiguousarray(np.moveaxis(volume, axis, 0), dtype=np.float32)


def from_slices(slices: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`to_slices`: ``[n, ny, nx]`` -> the volume's array layout."""
    return np.moveaxis(slices, 0, axis)


def write_volume_like(path: str | os.PathLike[str], data: np.ndarray, like: nib.Nifti1Image,
                      *, dtype: str = "input") -> Path:
    """Write ``data`` (the shape of ``like``'s data, trailing length-1 axes allowed to differ)
    as NIfTI with ``like``'s affine and header, atomically.

    Args:
      path: ``.nii`` or ``.nii.gz`` target.
      data: float array of the volume's 3-D shape.
      like: the input image whose header and affine are kept.
      dtype: ``"input"`` (keep ``like``'s on-disk type) or ``"float32"``.
    """
    if dtype not in OUTPUT_DTYPES:
        raise TaskError(f"output dtype must be one of {OUTPUT_DTYPES}; got {dtype!r}")
    header = like.header.copy()
    shape = tuple(like.shape)
    data = np.asarray(data, np.float32)
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"data of shape {data.shape} does not fit the volume shape {shape}")
    data = data.reshape(shape)
    if dtype == "float32":
        header.set_data_dtype(np.float32)
    # Let nibabel choose the scale factor for integer types (the input's own may not fit).
    header.set_slope_inter(np.nan, np.nan)
    image = nib.Nifti1Image(data, like.affine, header)
    with atomic_output(path) as tmp:
        nib.save(image, tmp)
    return Path(path)


def check_output_path(path: str | os.PathLike[str], what: str = "--output") -> Path:
    """``path`` as a Path, checked to be a ``.nii``/``.nii.gz`` file name."""
    if not nifti_suffix(path):
        raise TaskError(f"{what} {os.fspath(path)!r} must end in .nii or .nii.gz")
    return Path(path)
