"""The phantom BIDS dataset: ``write_phantom_dataset`` writes one volume per subject, of the
phantom version asked for, with TR/TE sidecars and a manifest that makes a second call free."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from kmri_jax.data.phantom.blocky import blocky_volume
from kmri_jax.data.phantom.whole_spine import whole_spine_volume

PHANTOM_MANIFEST = "phantom.json"
PHANTOM_VERSIONS = (1, 2)


def phantom_volume(shape: tuple[int, int, int], *, seed: int, subject: int,
                   version: int = 2) -> np.ndarray:
    """One phantom volume ``[X, Y, Z] float32`` (values about 0..1), deterministic in its arguments.

    ``version`` 2: the whole spine (:mod:`.whole_spine`); 1: the blocky segment of earlier runs.
    """
    return _volume(shape, seed=seed, subject=subject, version=version)[0]


def _volume(shape, *, seed: int, subject: int, version: int) -> tuple[np.ndarray, dict]:
    if version == 1:
        return blocky_volume(shape, seed=seed, subject=subject), {"spacing_mm": (1.0, 1.0, 1.0)}
    if version == 2:
        return whole_spine_volume(shape, seed=seed, subject=subject)
    raise ValueError(f"phantom version must be one of {PHANTOM_VERSIONS}; got {version!r} "
                     "(data.phantom_version / --phantom-version).")


def write_phantom_dataset(
    root: str | os.PathLike[str],
    *,
    n_subjects: int = 10,
    shape: tuple[int, int, int] = (24, 424, 736),
    seed: int = 0,
    version: int = 2,
) -> Path:
    """Write (or reuse) a phantom BIDS dataset of ``n_subjects`` subjects under ``root``.

    Writes ``dataset_description.json``, ``participants.tsv``, and for each subject
    ``sub-NN/anat/sub-NN_T2w.nii.gz`` (int16 with a scale factor, RAS+ affine with the
    phantom's voxel size: 1 mm for version 1) with a ``sub-NN_T2w.json`` sidecar
    (RepetitionTime, EchoTime in seconds; version 2 adds ``PhantomLandmarks``, the lungs' and
    diaphragm's positions as fractions of the readout axis). A ``phantom.json``
    manifest records the parameters; when it matches, nothing is rewritten. Files are written
    under temporary names and renamed, so an interrupted run leaves no half-written volume.

    Returns:
      ``root`` as a Path.
    """
    root = Path(root)
    params = {"n_subjects": int(n_subjects), "shape": [int(s) for s in shape], "seed": int(seed),
              "version": int(version)}
    manifest = root / PHANTOM_MANIFEST
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()) == params:
                return root
        except json.JSONDecodeError:
            pass
    root.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "kmri_jax procedural spine phantom", "BIDSVersion": "1.9.0",
         "DatasetType": "raw", "GeneratedBy": [{"Name": "kmri_jax.data.phantom"}]}, indent=2))
    width = max(2, len(str(n_subjects)))
    rows = ["participant_id"]
    for s in range(n_subjects):
        sub = f"sub-{s + 1:0{width}d}"
        rows.append(sub)
        anat = root / sub / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        vol, info = _volume(tuple(shape), seed=seed, subject=s, version=version)
        scale = float(vol.max()) / 32000 if vol.max() > 0 else 1.0
        img = nib.Nifti1Image(np.round(vol / scale).astype(np.int16),
                              np.diag([*info["spacing_mm"], 1.0]))
        img.header.set_slope_inter(scale, 0.0)
        img.header.set_xyzt_units("mm", "sec")
        rng = np.random.default_rng([seed, s, 104729])
        tmp = anat / f".{sub}_T2w.tmp.nii.gz"
        nib.save(img, tmp)
        os.replace(tmp, anat / f"{sub}_T2w.nii.gz")
        sidecar = {"RepetitionTime": round(float(rng.uniform(2.0, 3.5)), 3),
                   "EchoTime": round(float(rng.uniform(0.08, 0.12)), 4),
                   "MagneticFieldStrength": 3, "Manufacturer": "kmri_jax phantom"}
        landmarks = {k: round(v, 4) for k, v in info.items() if k != "spacing_mm"}
        if landmarks:
            sidecar["PhantomLandmarks"] = landmarks
        (anat / f"{sub}_T2w.json").write_text(json.dumps(sidecar, indent=2))
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    manifest.write_text(json.dumps(params))
    return root
