"""The volumes a command reads: a NIfTI file or a BIDS/NIfTI folder, each with its TR/TE."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from kmri_jax.data.discovery import DEFAULT_TE_S, DEFAULT_TR_S, discover_volumes, read_timing
from kmri_jax.tasks import volumes
from kmri_jax.tasks.errors import TaskError

__all__ = ["VolumeInput", "check_timing", "find_inputs"]


def check_timing(tr: float, te: float, where: str = "") -> None:
    """TR > 0 and 0 <= TE < TR, in seconds."""
    at = f" ({where})" if where else ""
    if not (math.isfinite(tr) and 0 < tr <= 100):
        raise TaskError(f"TR {tr:g} s{at} is out of range; use seconds in (0, 100]")
    if not (math.isfinite(te) and 0 <= te < tr):
        raise TaskError(f"TE {te:g} s{at} is out of range; use seconds in [0, TR)")


@dataclasses.dataclass(frozen=True)
class VolumeInput:
    """One input volume: its file, its path relative to the input root, TR/TE (seconds)."""

    path: Path
    relative: Path
    tr: float
    te: float
    index: int


def find_inputs(input_path: str | os.PathLike[str], *, tr: float | None = None,
                te: float | None = None, pattern: str | None = None) -> list[VolumeInput]:
    """The volumes of a NIfTI file or a BIDS/NIfTI folder, with TR/TE.

    TR/TE: the ``tr``/``te`` overrides when given, else the JSON sidecar
    (:mod:`kmri_jax.data.discovery` rules), else the seed's defaults (2.5 s, 0.03 s).
    """
    path = Path(input_path)
    if not path.exists():
        raise TaskError(f"--input {os.fspath(path)!r} does not exist; pass a .nii/.nii.gz file "
                        "or a BIDS folder")
    if path.is_dir():
        found = [(Path(v.path), Path(v.path).relative_to(path.resolve()), v.tr, v.te)
                 for v in discover_volumes(path, pattern=pattern)]
    else:
        if not volumes.nifti_suffix(path):
            raise TaskError(f"--input {os.fspath(path)!r} is not a .nii/.nii.gz file or a folder")
        t_r, t_e, _ = read_timing(path.resolve(), path.resolve().parent)
        found = [(path, Path(path.name), DEFAULT_TR_S if t_r is None else t_r,
                  DEFAULT_TE_S if t_e is None else t_e)]
    out = []
    for i, (p, rel, t_r, t_e) in enumerate(found):
        t_r = t_r if tr is None else tr
        t_e = t_e if te is None else te
        check_timing(t_r, t_e, os.fspath(p))
        out.append(VolumeInput(p, rel, float(t_r), float(t_e), i))
    return out
