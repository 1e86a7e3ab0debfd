"""Find NIfTI volumes (BIDS or a plain folder) and read their TR/TE from JSON sidecars.

BIDS (e.g. OpenNeuro ds005616): ``sub-*/anat/sub-*_T2w.nii.gz`` (sessions allowed:
``sub-*/ses-*/anat/...``); the subject id is the ``sub-XXX`` folder name. A plain folder:
every ``.nii``/``.nii.gz`` below it; the subject id is the file name without extension.

Sidecar lookup for ``X.nii.gz``: ``X.json`` next to it, else the BIDS-inherited
``<root>/*_<suffix>.json`` / ``<root>/<suffix>.json``. ``RepetitionTime`` and ``EchoTime`` are
in seconds. Missing values fall back to the seed's defaults (TR 2.5 s, TE 0.03 s), announced
once per discovery in the log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path

from kmri_jax.data.errors import DataError, skip_hint

log = logging.getLogger("kmri_jax.data")

DEFAULT_TR_S = 2.5
DEFAULT_TE_S = 0.03
DEFAULT_SUFFIX = "T2w"
_SUBJECT_RE = re.compile(r"^(sub-[A-Za-z0-9]+)")


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    """One discovered volume.

    Attributes:
      path: absolute path of the ``.nii``/``.nii.gz`` file.
      subject: subject id (``sub-XXX`` in BIDS, the file stem otherwise).
      tr, te: repetition and echo time in seconds.
      sidecar: the JSON file TR/TE came from ("" when none).
      timing_from_sidecar: False when TR or TE fell back to the defaults.
    """

    path: str
    subject: str
    tr: float
    te: float
    sidecar: str = ""
    timing_from_sidecar: bool = True


def nifti_stem(path: str | os.PathLike[str]) -> str:
    """File name without ``.nii``/``.nii.gz``."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def is_bids(root: Path) -> bool:
    """True when ``root`` looks like a BIDS dataset (a description file or ``sub-*`` folders)."""
    if (root / "dataset_description.json").is_file():
        return True
    return any(p.is_dir() for p in root.glob("sub-*"))


def find_volume_files(
    root: str | os.PathLike[str], *, pattern: str | None = None, suffix: str = DEFAULT_SUFFIX
) -> list[Path]:
    """Sorted volume files under ``root``.

    Args:
      root: dataset folder.
      pattern: glob relative to ``root``; default: the BIDS layout for ``suffix`` when ``root`` is
        BIDS, else every ``.nii``/``.nii.gz`` file below ``root``.
      suffix: BIDS suffix used by the default pattern (``T2w``).

    Raises:
      DataError: the folder is missing, or nothing matched.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            root,
            "data folder does not exist" if not root.exists() else "data path is not a folder",
            "pass the folder holding the dataset (kmri-prepare --data-root, "
            "kmri-train --config.data.root=), or leave it empty to use the built-in phantom data",
        )
    if pattern is not None:
        patterns = [pattern]
    elif is_bids(root):
        patterns = [f"sub-*/anat/sub-*_{suffix}.nii.gz", f"sub-*/anat/sub-*_{suffix}.nii",
                    f"sub-*/ses-*/anat/sub-*_{suffix}.nii.gz", f"sub-*/ses-*/anat/sub-*_{suffix}.nii"]
    else:
        patterns = ["**/*.nii.gz", "**/*.nii"]
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    if not files:
        raise DataError(
            root,
            f"no volumes found (looked for {', '.join(patterns)})",
            "check the folder, fetch the files (e.g. `datalad get sub-*/anat/sub-*_T2w.nii.gz`; "
            "git-annex links without content do not count), or pass a matching --pattern",
        )
    return files


def subject_of(path: Path, root: Path) -> str:
    """Subject id of a volume: the first ``sub-XXX`` path component, else the file stem."""
    for part in path.relative_to(root).parts:
        m = _SUBJECT_RE.match(part)
        if m:
            return m.group(1)
    return nifti_stem(path)


def _sidecar_for(path: Path, root: Path, suffix: str) -> Path | None:
    own = path.with_name(nifti_stem(path) + ".json")
    if own.is_file():
        return own
    inherited = sorted(root.glob(f"*_{suffix}.json")) + sorted(root.glob(f"{suffix}.json"))
    return inherited[0] if inherited else None


def _seconds(value: object, key: str, sidecar: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise DataError(
            sidecar,
            f"{key} is {value!r}; expected a positive number of seconds",
            f"correct {key} in the sidecar (BIDS uses seconds) or remove the key to use the "
            "default",
        )
    if key == "RepetitionTime" and value > 100:
        raise DataError(
            sidecar, f"RepetitionTime is {value}, which looks like milliseconds",
            "write RepetitionTime in seconds as BIDS requires")
    return float(value)


def read_timing(path: Path, root: Path, suffix: str = DEFAULT_SUFFIX) -> tuple[float | None,
                                                                               float | None, str]:
    """(TR, TE, sidecar) for one volume; None where the sidecar lacks the value.

    Raises:
      DataError: the sidecar is not valid JSON, or holds an invalid TR/TE.
    """
    sidecar = _sidecar_for(path, root, suffix)
    if sidecar is None:
        return None, None, ""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(sidecar, f"sidecar is not valid JSON ({e})",
                        "repair or delete the JSON file (TR/TE then default to 2.5 s / 0.03 s), "
                        + skip_hint()) from None
    if not isinstance(meta, dict):
        raise DataError(sidecar, "sidecar JSON is not an object",
                        "write the sidecar as a JSON object, e.g. {\"RepetitionTime\": 2.5}")
    return (_seconds(meta.get("RepetitionTime"), "RepetitionTime", sidecar),
            _seconds(meta.get("EchoTime"), "EchoTime", sidecar), os.fspath(sidecar))


def discover_volumes(
    root: str | os.PathLike[str],
    *,
    pattern: str | None = None,
    suffix: str = DEFAULT_SUFFIX,
    strict: bool = True,
    problems: list[DataError] | None = None,
) -> list[VolumeInfo]:
    """Discover the volumes of a dataset with their subject and TR/TE.

    Args:
      root: dataset folder (BIDS or any folder of NIfTI files).
      pattern: glob relative to ``root`` (see ``find_volume_files``).
      suffix: BIDS suffix (``T2w``).
      strict: raise on the first bad sidecar; else skip that volume and append the error to
        ``problems``.
      problems: where skipped volumes are reported when ``strict`` is False.

    Returns:
      Volumes sorted by path.
    """
    root = Path(root).resolve()
    volumes = []
    n_default = 0
    for path in find_volume_files(root, pattern=pattern, suffix=suffix):
        try:
            tr, te, sidecar = read_timing(path, root, suffix)
        except DataError as e:
            if strict:
                raise
            if problems is not None:
                problems.append(e)
            continue
        from_sidecar = tr is not None and te is not None
        n_default += not from_sidecar
        volumes.append(VolumeInfo(
            path=os.fspath(path), subject=subject_of(path, root),
            tr=DEFAULT_TR_S if tr is None else tr, te=DEFAULT_TE_S if te is None else te,
            sidecar=sidecar, timing_from_sidecar=from_sidecar))
    if n_default:
        log.warning("%d of %d volumes under %s have no RepetitionTime/EchoTime in a sidecar; "
                    "using the defaults TR %.1f s, TE %.2f s for the missing values",
                    n_default, len(volumes), root, DEFAULT_TR_S, DEFAULT_TE_S)
    return volumes
