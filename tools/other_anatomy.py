"""A held-out check on real anatomy that needs no download: the real EPI brain volume that
nibabel installs with its tests (``nibabel/tests/data/example4d.nii.gz``, 128 x 96 x 24, two
time points), written as a tiny BIDS dataset the commands read like any other.

Each time point becomes one subject (``sub-epi1``, ``sub-epi2``): the axial planes, 2x2-averaged
in plane to 64 x 48 (real anatomy at about the quickstart's size; 64 x 96 slices zero-pad it on
the right), sliced along the first array axis as training does. A ``splits.json`` puts both in
``test``. Then, e.g.::

    python tools/other_anatomy.py runs/other_anatomy
    kmri-evaluate --checkpoint runs/quickstart --data-root runs/other_anatomy \\
        --splits runs/other_anatomy/splits.json --split test --combinations orthogonal \\
        --output runs/report_other_anatomy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np


def write(root: Path, *, native: bool = False) -> Path:
    """Write the dataset under ``root``; ``native``: the planes at their own 128 x 96 pixels
    instead of 2x2-averaged to 64 x 48."""
    source = Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    data = np.asarray(nib.load(source).get_fdata(), np.float32)  # [128, 96, 24, 2]
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "nibabel example4d EPI", '
                                                   '"BIDSVersion": "1.9.0"}')
    for t in range(data.shape[-1]):
        vol = data[..., t]
        if not native:
            vol = vol.reshape(64, 2, 48, 2, vol.shape[2]).mean(axis=(1, 3))  # [64, 48, 24]
        vol = np.transpose(vol, (2, 0, 1))  # [24 slices, rows, columns]
        sub = f"sub-epi{t + 1}"
        path = root / sub / "anat" / f"{sub}_T2w.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
        (path.parent / f"{sub}_T2w.json").write_text(json.dumps(
            {"RepetitionTime": 2.5, "EchoTime": 0.03}))
    (root / "splits.json").write_text(json.dumps(
        {"train": [], "val": [], "test": [f"sub-epi{t + 1}" for t in range(data.shape[-1])]}))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder to write the dataset to")
    ap.add_argument("--native", action="store_true",
                    help="keep the planes' own 128 x 96 pixels (default: 2x2-averaged, 64 x 48)")
    args = ap.parse_args()
    print(f"wrote {write(args.root, native=args.native)}")


if __name__ == "__main__":
    main()
