"""A slice source read directly from the NIfTI volumes, lazily, with a bounded cache of
preprocessed volumes: the no-store path (and the benchmark's baseline). Every cache miss
decompresses and preprocesses a whole volume, which is what the prepared store avoids."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from kmri_jax.data.discovery import DEFAULT_SUFFIX, discover_volumes
from kmri_jax.data.errors import DataError
from kmri_jax.data.preprocess import PreparedVolume, PreprocessOptions, prepare_volume_file, \
    select_slices
from kmri_jax.data.splits import SPLIT_CODES, SPLIT_NAMES, Splits, load_splits, make_splits, \
    match_subjects, split_of


class VolumeSource:
    """``SliceSource`` over the volumes of a dataset (same rows/metadata as a store would have).

    The slice index is built from the NIfTI headers only, so ``slices="content"`` (which needs
    the voxels) is not supported here; use a prepared store for it.

    Args:
      data_root: dataset folder.
      options: preprocessing.
      splits: split dict or ``splits.json`` path; None: made from ``split_seed``.
      split_seed, split_fractions: for a new split.
      pattern, suffix: discovery.
      cache_volumes: preprocessed volumes kept in memory (LRU).
    """

    def __init__(self, data_root: str | os.PathLike[str], *,
                 options: PreprocessOptions = PreprocessOptions(),
                 splits: str | os.PathLike[str] | Splits | None = None, split_seed: int = 0,
                 split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
                 pattern: str | None = None, suffix: str = DEFAULT_SUFFIX,
                 cache_volumes: int = 4):
        if options.slices == "content":
            raise DataError(data_root, "slices='content' needs the voxels of every volume",
                            "prepare a store (kmri-prepare) or use slices='all'/'central'")
        self.options, self.cache_volumes = options, max(1, cache_volumes)
        self.volumes = discover_volumes(data_root, pattern=pattern, suffix=suffix)
        subjects = sorted({v.subject for v in self.volumes})
        if splits is None:
            splits = make_splits(subjects, seed=split_seed, fractions=split_fractions)
        else:
            path = None if isinstance(splits, dict) else splits
            given = splits if path is None else load_splits(path)
            splits, _ = match_subjects({k: list(given.get(k, [])) for k in SPLIT_NAMES},
                                       subjects, path=path)
        where = split_of(splits)
        chunks = []
        for vi, v in enumerate(self.volumes):
            img = nib.load(v.path)
            shape = tuple(img.shape[:3])
            if options.reorient:  # the axes' order after turning to the closest RAS
                ornt = nib.orientations.io_orientation(img.affine)
                turned = [0, 0, 0]
                for axis, (new_axis, _) in enumerate(ornt):
                    turned[int(new_axis)] = shape[axis]
                shape = tuple(turned)
            plane = [s for a, s in enumerate(shape[:3]) if a != options.axis]
            keep = select_slices(shape[options.axis], None, options)
            rows = np.zeros(len(keep), [("volume", "<i4"), ("slice", "<i4"), ("pos", "<i4"),
                                        ("tr", "<f4"), ("te", "<f4"), ("valid_rows", "<i4"),
                                        ("valid_cols", "<i4"), ("split", "i1")])
            rows["volume"], rows["slice"], rows["pos"] = vi, keep, np.arange(len(keep))
            rows["tr"], rows["te"] = v.tr, v.te
            rows["valid_rows"] = min(plane[0], options.ny)
            rows["valid_cols"] = min(plane[1], options.nx)
            rows["split"] = SPLIT_CODES[where[v.subject]] if v.subject in where else -1
            chunks.append(rows)
        self.index = np.concatenate(chunks)
        self.image_shape = (options.ny, options.nx)
        self._cache: collections.OrderedDict[int, PreparedVolume] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.path = Path(data_root)

    def __len__(self) -> int:
        return len(self.index)

    def indices(self, split: str | None = None) -> np.ndarray:
        if split is None:
            return np.arange(len(self))
        if split not in SPLIT_CODES:
            raise DataError(None, f"unknown split {split!r}", f"use one of {SPLIT_NAMES}")
        return np.flatnonzero(self.index["split"] == SPLIT_CODES[split])

    def _volume(self, vi: int) -> PreparedVolume:
        with self._lock:
            if vi in self._cache:
                self._cache.move_to_end(vi)
                return self._cache[vi]
        prepared = prepare_volume_file(self.volumes[vi].path, self.options)
        with self._lock:
            self._cache[vi] = prepared
            while len(self._cache) > self.cache_volumes:
                self._cache.popitem(last=False)
        return prepared

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Same output as ``SliceStore.read``."""
        meta = self.index[np.asarray(rows, dtype=np.int64)]
        out = np.empty((len(meta), *self.image_shape), dtype=np.float32)
        for i in np.argsort(meta["volume"], kind="stable"):   # each volume once per batch
            out[i] = self._volume(int(meta["volume"][i])).images[meta["pos"][i]]
        return {
            "image": out,
            "valid_shape": np.stack([meta["valid_rows"], meta["valid_cols"]], 1).astype(np.int32),
            "tr": meta["tr"].astype(np.float32), "te": meta["te"].astype(np.float32),
            "volume": meta["volume"].astype(np.int32), "slice": meta["slice"].astype(np.int32),
        }

    def __getitem__(self, row: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.read(np.array([row])).items()}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_lock"] = collections.OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
