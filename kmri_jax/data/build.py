"""Dataset -> prepared slice store: discovery, splits, preprocessing, atomic write; and
``ensure_store``, the one call the training loop makes (phantom data when there is no dataset,
reuse of a matching store)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kmri_jax.data.discovery import DEFAULT_SUFFIX, discover_volumes, find_volume_files
from kmri_jax.data.errors import DataError
from kmri_jax.data.phantom import write_phantom_dataset
from kmri_jax.data.preprocess import PreprocessOptions, prepare_volume_file
from kmri_jax.data.splits import (SPLIT_CODES, Splits, load_splits, make_splits, match_subjects,
                                  save_splits, split_of)
from kmri_jax.data.store import INDEX_DTYPE, META_FILE, SliceStore, store_writer

log = logging.getLogger("kmri_jax.data")


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What ``build_store`` did.

    Attributes:
      path: the store folder.
      n_volumes: volumes stored.
      n_slices: slices stored.
      skipped: the problems of the volumes left out (only with ``strict=False``).
      reused: True when ``ensure_store`` found a matching store and did nothing.
    """

    path: Path
    n_volumes: int
    n_slices: int
    skipped: tuple[DataError, ...] = ()
    reused: bool = False


def _file_fingerprint(root: Path, files: Sequence[Path]) -> list[list[Any]]:
    out = []
    for f in files:
        st = f.stat()
        out.append([os.fspath(f.relative_to(root)), st.st_size, st.st_mtime_ns])
    return out


def _resolve_splits(splits: str | os.PathLike[str] | Splits | None, subjects: list[str], *,
                    seed: int, fractions: Sequence[float]) -> tuple[Splits, str | None]:
    if splits is None:
        return make_splits(subjects, seed=seed, fractions=fractions), None
    if isinstance(splits, dict):
        resolved, path = {k: sorted(splits.get(k, [])) for k in ("train", "val", "test")}, None
    elif Path(splits).is_file():
        resolved, path = load_splits(splits), os.fspath(splits)
    else:  # a split file to create
        resolved = make_splits(subjects, seed=seed, fractions=fractions)
        save_splits(resolved, splits)
        log.info("wrote a new split (seed %d) to %s", seed, splits)
        return resolved, os.fspath(splits)
    resolved, left_out = match_subjects(resolved, subjects, path=path)
    if left_out:
        log.warning("%d subject(s) found in the data are in no split and are left out: %s",
                    len(left_out), ", ".join(left_out[:10]))
    return resolved, path


def _split_rule(splits: str | os.PathLike[str] | Splits | None, seed: int,
                fractions: Sequence[float]) -> dict[str, Any]:
    """How the split is chosen, as recorded in the store: a given split, or seed + fractions."""
    if isinstance(splits, dict):
        return {"given": {k: sorted(splits.get(k, [])) for k in ("train", "val", "test")}}
    if splits is not None and Path(splits).is_file():
        return {"given": load_splits(splits)}
    return {"seed": int(seed), "fractions": [float(f) for f in fractions]}


def _build_config(root: Path, opts: PreprocessOptions, *, pattern: str | None, suffix: str,
                  split_rule: dict[str, Any], strict: bool) -> dict[str, Any]:
    files = find_volume_files(root, pattern=pattern, suffix=suffix)
    return {"data_root": os.fspath(root), "pattern": pattern, "suffix": suffix,
            "preprocess": opts.to_dict(), "split_rule": split_rule, "strict": strict,
            "files": _file_fingerprint(root, files)}


def build_store(
    data_root: str | os.PathLike[str],
    store_dir: str | os.PathLike[str],
    *,
    options: PreprocessOptions = PreprocessOptions(),
    splits: str | os.PathLike[str] | Splits | None = None,
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    pattern: str | None = None,
    suffix: str = DEFAULT_SUFFIX,
    strict: bool = True,
) -> BuildReport:
    """Convert a dataset into a slice store at ``store_dir`` (replacing an old store there).

    Args:
      data_root: BIDS dataset or folder of NIfTI files.
      store_dir: the store folder to create.
      options: preprocessing.
      splits: a ``splits.json`` to use (created from ``split_seed``/``split_fractions`` when the
        file does not exist yet), a split dict, or None for a split made from the seed (saved
        in the store's ``splits.json``).
      split_seed, split_fractions: for a new split.
      pattern, suffix: discovery (see ``discover_volumes``).
      strict: stop at the first bad volume (default); else skip bad volumes, log them with a
        count and record them in ``meta.json``.

    Raises:
      DataError: any user-caused problem (strict), or nothing usable left (non-strict). No
        partial store is left behind.
    """
    root = Path(data_root).resolve()
    problems: list[DataError] = []
    volumes = discover_volumes(root, pattern=pattern, suffix=suffix, strict=strict,
                               problems=problems)
    all_subjects = sorted({v.subject for v in volumes})
    resolved, _ = _resolve_splits(splits, all_subjects, seed=split_seed,
                                  fractions=split_fractions)
    split_rule = _split_rule(splits, split_seed, split_fractions)  # after a new file is written
    subject_split = split_of(resolved)
    volumes = [v for v in volumes if v.subject in subject_split]
    subjects = sorted({v.subject for v in volumes})
    subject_id = {s: i for i, s in enumerate(subjects)}
    config = _build_config(root, options, pattern=pattern, suffix=suffix,
                           split_rule=split_rule, strict=strict)
    vol_meta: list[dict[str, Any]] = []
    with store_writer(store_dir, (options.ny, options.nx)) as writer:
        for v in volumes:
            try:
                prepared = prepare_volume_file(v.path, options)
            except DataError as e:
                if strict:
                    raise
                problems.append(e)
                continue
            n = len(prepared.slice_indices)
            rows = np.zeros(n, INDEX_DTYPE)
            rows["subject"] = subject_id[v.subject]
            rows["volume"] = len(vol_meta)
            rows["slice"] = prepared.slice_indices
            rows["tr"], rows["te"] = v.tr, v.te
            rows["valid_rows"], rows["valid_cols"] = prepared.valid_shape
            rows["split"] = SPLIT_CODES[subject_split[v.subject]]
            writer.add(prepared.images, rows)
            vol_meta.append({"path": os.fspath(Path(v.path).relative_to(root)),
                             "subject": v.subject, "tr": v.tr, "te": v.te,
                             "timing_from_sidecar": v.timing_from_sidecar,
                             "n_slices_total": prepared.n_slices_total, "n_slices": n,
                             "valid_shape": list(prepared.valid_shape)})
        if problems:
            log.warning("skipped %d bad volume(s) (strict=False):\n  %s", len(problems),
                        "\n  ".join(str(p) for p in problems))
        if writer.n == 0:
            raise DataError(root, "no slices left to store" + (
                f" ({len(problems)} bad volume(s) skipped)" if problems else ""),
                "fix the reported files, or relax the slice selection (--slices all)")
        meta = {"config": config, "subjects": subjects, "volumes": vol_meta,
                "skipped": [{"path": p.path, "problem": p.problem, "fix": p.fix}
                            for p in problems]}
        path = writer.commit(meta, resolved)
    log.info("prepared %d slices from %d volumes into %s", writer.n, len(vol_meta), path)
    return BuildReport(path=path, n_volumes=len(vol_meta), n_slices=writer.n,
                       skipped=tuple(problems))


def phantom_dir_for(store_dir: str | os.PathLike[str]) -> Path:
    """Where ``ensure_store`` writes phantom data for a store: ``<store>-phantom`` next to it."""
    store_dir = Path(store_dir).absolute()
    return store_dir.with_name(store_dir.name + "-phantom")


def ensure_store(
    data_root: str | os.PathLike[str] | None,
    store_dir: str | os.PathLike[str],
    *,
    options: PreprocessOptions = PreprocessOptions(),
    splits: str | os.PathLike[str] | Splits | None = None,
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    pattern: str | None = None,
    suffix: str = DEFAULT_SUFFIX,
    strict: bool = True,
    phantom_subjects: int = 10,
    phantom_slices: int = 24,
    phantom_version: int = 2,
    phantom_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> Path:
    """Return the path of a ready store, building it only when needed.

    With no ``data_root`` (None or ""), a phantom BIDS dataset of ``phantom_subjects`` volumes of
    shape ``(phantom_slices, options.ny, options.nx)`` and version ``phantom_version`` is written (deterministic from ``seed``)
    to ``phantom_dir`` (default ``<store_dir>-phantom``) and prepared. A store already at
    ``store_dir`` is reused when its build config (data root, discovery, preprocessing options,
    split, strictness, and the names/sizes/mtimes of the volume files) equals the requested
    one; otherwise it is rebuilt (atomically). ``seed`` drives the phantom generator only; the
    split uses ``split_seed``.

    Multi-host: call it on one process (e.g. ``jax.process_index() == 0``) and have the others
    wait at a barrier, then open the store with ``SliceStore``; concurrent builds of one folder
    are not coordinated.
    """
    if not data_root:
        data_root = write_phantom_dataset(
            phantom_dir or phantom_dir_for(store_dir), n_subjects=phantom_subjects,
            shape=(phantom_slices, options.ny, options.nx), seed=seed, version=phantom_version)
    root = Path(data_root).resolve()
    store_dir = Path(store_dir)
    if (store_dir / META_FILE).is_file():
        try:
            existing = SliceStore(store_dir)
            want = _build_config(root, options, pattern=pattern, suffix=suffix,
                                 split_rule=_split_rule(splits, split_seed, split_fractions),
                                 strict=strict)
            have = existing.meta["config"]
            if want == {k: have.get(k) for k in want}:
                log.info("reusing the prepared store %s (%d slices)", store_dir, len(existing))
                return store_dir
            changed = sorted(k for k in want if want[k] != have.get(k))
            log.info("store %s was built with other options or files (%s differ); rebuilding",
                     store_dir, ", ".join(changed))
        except (DataError, KeyError, TypeError) as e:
            log.warning("store %s is unusable (%s); rebuilding", store_dir, e)
    build_store(root, store_dir, options=options, splits=splits, split_seed=split_seed,
                split_fractions=split_fractions, pattern=pattern, suffix=suffix, strict=strict)
    return store_dir
