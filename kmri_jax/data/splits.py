"""Subject-level train/val/test splits, deterministic from a seed, stored as the seed's
``splits.json``: ``{"train": [...], "val": [...], "test": [...]}`` of subject ids.

Subject ids are the BIDS folder names with their prefix (``sub-amuAL``); that is what this
project writes. A split file may also list BIDS participant *labels*, without the prefix
(``amuAL``, as BIDS apps' ``--participant_label`` and the seed's own ``splits.json`` do):
:func:`match_subjects` maps a label to the subject ``sub-<label>`` found in the data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from kmri_jax.data.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
SPLIT_CODES = {name: code for code, name in enumerate(SPLIT_NAMES)}  # as stored in the index

Splits = dict[str, list[str]]


def make_splits(
    subjects: Iterable[str], *, seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> Splits:
    """Assign subjects to train/val/test, deterministically from ``seed``.

    The subjects are sorted, permuted with ``numpy.random.default_rng(seed)``, and cut into
    ``n_val = round(f_val * n)`` and ``n_test = round(f_test * n)`` (each at least 1 when there are
    3 or more subjects), the rest train. Each list is returned sorted. The result depends only
    on the set of subjects, the seed and the fractions.
    """
    subs = sorted(set(subjects))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1):
        raise DataError(None, f"split fractions {tuple(fractions)} are invalid",
                        "give three non-negative fractions (train, val, test) that sum to 1")
    n = len(subs)
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = (int(round(f * n)) for f in fractions[1:])
    if n >= 3:
        n_val = max(n_val, 1) if fractions[1] > 0 else 0
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
    n_train = max(n - n_val - n_test, 0)
    picked = [subs[i] for i in order]
    return {
        "train": sorted(picked[:n_train]),
        "val": sorted(picked[n_train:n_train + n_val]),
        "test": sorted(picked[n_train + n_val:]),
    }


def save_splits(splits: Splits, path: str | os.PathLike[str]) -> None:
    """Write ``splits`` as JSON (atomically: a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({k: list(splits[k]) for k in SPLIT_NAMES}, indent=2) + "\n")
    os.replace(tmp, path)


def load_splits(path: str | os.PathLike[str]) -> Splits:
    """Read a ``splits.json``; missing keys are empty lists.

    Raises:
      DataError: unreadable, not JSON, wrong shape, or a subject in two splits.
    """
    path = Path(path)
    fix = ('write it as {"train": [...], "val": [...], "test": [...]} of subject ids, '
           "or drop --splits to make a split from the seed")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "split file does not exist", "check the path, " + fix) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"split file is not valid JSON ({e})", fix) from None
    if not isinstance(raw, dict) or not set(raw) <= set(SPLIT_NAMES) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in raw.values()):
        raise DataError(path, "split file has the wrong shape", fix)
    splits = {k: sorted(raw.get(k, [])) for k in SPLIT_NAMES}
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for s in splits[name]:
            if s in seen:
                raise DataError(path, f"subject {s} is in both {seen[s]!r} and {name!r}",
                                "list each subject in one split only")
            seen[s] = name
    return splits


def check_splits(splits: Splits, subjects: Iterable[str], *, path: str | os.PathLike[str] | None
                 ) -> list[str]:
    """Check a split against the subjects found; return the found subjects it leaves out.

    Raises:
      DataError: the split names subjects that were not found in the data.
    """
    found = set(subjects)
    named = {s for k in SPLIT_NAMES for s in splits[k]}
    unknown = sorted(named - found)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise DataError(
            path, f"split file names {len(unknown)} subject(s) not found in the data: {shown}",
            "fetch those subjects, remove them from the split file, or drop --splits to make a "
            "split of the subjects present")
    return sorted(found - named)


def match_subjects(splits: Splits, subjects: Iterable[str], *,
                   path: str | os.PathLike[str] | None) -> tuple[Splits, list[str]]:
    """A split file's names as the subject ids found in the data, and the subjects it leaves out.

    A name matches the subject of the same id, or, being a BIDS participant label without the
    ``sub-`` prefix, the subject ``sub-<name>``.

    Raises:
      DataError: a name matches no subject found, or two names match the same subject.
    """
    found = set(subjects)
    resolved: Splits = {}
    origin: dict[str, str] = {}
    for name in SPLIT_NAMES:
        ids = []
        for s in splits[name]:
            sid = s if s in found or f"sub-{s}" not in found else f"sub-{s}"
            if sid in origin:
                raise DataError(path, f"{origin[sid]!r} and {s!r} both name the subject {sid}",
                                "list each subject once, with or without its 'sub-' prefix")
            origin[sid] = s
            ids.append(sid)
        resolved[name] = sorted(ids)
    return resolved, check_splits(resolved, found, path=path)


def split_of(splits: Splits) -> dict[str, str]:
    """Subject id -> split name."""
    return {s: name for name in SPLIT_NAMES for s in splits[name]}
