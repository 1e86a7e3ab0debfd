"""Helpers writing small NIfTI datasets (volumes 8 x 40 x 48) for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (8, 40, 48)


def write_nifti(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), path)
    return path


def random_volume(seed: int, shape=SHAPE) -> np.ndarray:
    """A float32 volume with a bright blob, background and outliers (exercises every step)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    blob = np.exp(-(x**2 + 2 * y**2 + z**2) * 2.0)
    vol = 100 * blob + rng.gamma(2.0, 3.0, size=shape)
    vol.flat[rng.integers(0, vol.size, 20)] = 1000.0        # outliers above the 99.5th pct
    return vol.astype(np.float32)


def write_bids(root: Path, n_subjects: int = 6, *, shape=SHAPE, sidecar=True,
               tr_te=None) -> Path:
    """A BIDS dataset ``sub-XX/anat/sub-XX_T2w.nii.gz`` with sidecars (TR 2.0+0.1 i, TE 0.1)."""
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "test", "BIDSVersion": "1.9.0"}')
    for i in range(n_subjects):
        sub = f"sub-{i + 1:02d}"
        write_nifti(root / sub / "anat" / f"{sub}_T2w.nii.gz", random_volume(i, shape))
        if sidecar:
            tr, te = tr_te if tr_te else (2.0 + 0.1 * i, 0.1)
            (root / sub / "anat" / f"{sub}_T2w.json").write_text(
                json.dumps({"RepetitionTime": tr, "EchoTime": te}))
    return root
