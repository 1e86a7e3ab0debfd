"""Small helpers of the command tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    affine = np.diag([1.0, 1.2, 0.9, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
