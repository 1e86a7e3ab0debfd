"""The prepared slice store: preprocessed slices on disk, memory-mapped for training.

A store is a folder::

    images.f32   raw little-endian float32 [N, ny, nx], C order (np.memmap-able)
    index.npy    structured [N]: subject, volume, slice, tr, te, valid_rows, valid_cols, split
    meta.json    format version, shape, subjects, volumes, splits, the build config, skipped files
    splits.json  the subject split used, in the seed's format

The images are a raw file (not .npy) so they can be streamed volume by volume without knowing
N in advance; ``meta.json`` holds the shape. ``write_store`` builds the folder under a temporary
name next to the target and renames it into place, so a store is either complete or absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmri_jax.data.errors import DataError
from kmri_jax.data.splits import SPLIT_CODES, SPLIT_NAMES, Splits

STORE_FORMAT = 1
IMAGES_FILE = "images.f32"
INDEX_FILE = "index.npy"
META_FILE = "meta.json"
SPLITS_FILE = "splits.json"

INDEX_DTYPE = np.dtype([
    ("subject", "<i4"),     # index into meta["subjects"]
    ("volume", "<i4"),      # index into meta["volumes"]
    ("slice", "<i4"),       # slice index along the slicing axis of the volume
    ("tr", "<f4"),          # seconds
    ("te", "<f4"),          # seconds
    ("valid_rows", "<i4"),
    ("valid_cols", "<i4"),
    ("split", "i1"),        # 0 train, 1 val, 2 test, -1 in no split
])


class SliceStore:
    """Read access to a prepared store.

    Attributes:
      path: the store folder.
      meta: the parsed ``meta.json``.
      index: ``[N]`` structured array (``INDEX_DTYPE``), one row per slice.
      shape: ``(N, ny, nx)``.
      subjects, volumes: lists from ``meta.json`` (``volumes[i]`` has ``path``, ``subject``,
        ``tr``, ``te``, ``shape``).
      splits: subject ids per split.

    ``images`` is opened lazily (read-only ``np.memmap``), so the object pickles cheaply into
    worker processes, each of which maps the file itself.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            raise DataError(self.path, "not a slice store (no meta.json)",
                            "build it with `kmri-prepare --data-root DIR --store "
                            f"{self.path}` or pass the right folder")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(meta_path, f"store metadata is not valid JSON ({e})",
                            "delete the store folder and prepare it again") from None
        if self.meta.get("format") != STORE_FORMAT:
            raise DataError(self.path, f"store format {self.meta.get('format')} is not the "
                            f"supported {STORE_FORMAT}", "prepare the store again")
        self.shape = tuple(int(s) for s in self.meta["shape"])
        self.index: np.ndarray = np.load(self.path / INDEX_FILE)
        images = self.path / IMAGES_FILE
        expected = int(np.prod(self.shape)) * 4
        if self.index.dtype != INDEX_DTYPE or len(self.index) != self.shape[0] or (
                not images.is_file() or images.stat().st_size != expected):
            raise DataError(self.path, "store is inconsistent (index or image file does not "
                            "match meta.json)", "delete the store folder and prepare it again")
        self.subjects: list[str] = self.meta["subjects"]
        self.volumes: list[dict[str, Any]] = self.meta["volumes"]
        self.splits: Splits = self.meta["splits"]
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        """``[N, ny, nx] float32`` read-only memory map."""
        if self._images is None:
            self._images = np.memmap(self.path / IMAGES_FILE, dtype="<f4", mode="r",
                                     shape=self.shape)
        return self._images

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]

    def indices(self, split: str | None = None) -> np.ndarray:
        """Store rows (``[n] int64``, ascending) of a split (``None``: all rows)."""
        if split is None:
            return np.arange(len(self))
        if split not in SPLIT_CODES:
            raise DataError(self.path, f"unknown split {split!r}",
                            f"use one of {', '.join(SPLIT_NAMES)}")
        return np.flatnonzero(self.index["split"] == SPLIT_CODES[split])

    def read(self, rows: np.ndarray, *, out: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Read store rows as a batch (the batch contract minus ``combination``/``weight``).

        The image copy is one pass over the memory map in ascending row order (sequential
        reads for the page cache / disk), written into the output in the order of ``rows``.

        Args:
          rows: ``[B]`` store rows.
          out: optional ``[B, ny, nx] float32`` array to fill (e.g. in shared memory).

        Returns:
          ``image [B, ny, nx] float32``, ``valid_shape [B, 2] int32``, ``tr``, ``te [B]
          float32``, ``volume``, ``slice [B] int32``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        images = self.images
        if out is None:
            out = np.empty((len(rows), *self.image_shape), dtype=np.float32)
        for i in np.argsort(rows, kind="stable"):
            out[i] = images[rows[i]]
        meta = self.index[rows]
        return {
            "image": out,
            "valid_shape": np.stack([meta["valid_rows"], meta["valid_cols"]], 1).astype(np.int32),
            "tr": meta["tr"].astype(np.float32),
            "te": meta["te"].astype(np.float32),
            "volume": meta["volume"].astype(np.int32),
            "slice": meta["slice"].astype(np.int32),
        }

    def __getitem__(self, row: int) -> dict[str, np.ndarray]:
        """One slice with its metadata (grain ``RandomAccessDataSource`` protocol)."""
        return {k: v[0] for k, v in self.read(np.array([row])).items()}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    def __repr__(self) -> str:
        counts = {s: len(self.indices(s)) for s in SPLIT_NAMES}
        return f"SliceStore({str(self.path)!r}, shape={self.shape}, splits={counts})"


class StoreWriter:
    """Streams slices into a temporary store folder; ``commit`` renames it into place."""

    def __init__(self, target: Path, tmp: Path, image_shape: tuple[int, int]):
        self.target, self.tmp, self.image_shape = target, tmp, image_shape
        self._f = open(tmp / IMAGES_FILE, "wb")
        self._rows: list[np.ndarray] = []
        self.n = 0

    def add(self, images: np.ndarray, rows: np.ndarray) -> None:
        """Append ``images [n, ny, nx]`` with their index ``rows`` (``INDEX_DTYPE``)."""
        assert images.shape[1:] == self.image_shape and len(images) == len(rows)
        self._f.write(np.ascontiguousarray(images, dtype="<f4").tobytes(order="C"))
        self._rows.append(rows.astype(INDEX_DTYPE))
        self.n += len(images)

    def commit(self, meta: dict[str, Any], splits: Splits) -> Path:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        index = np.concatenate(self._rows) if self._rows else np.zeros(0, INDEX_DTYPE)
        np.save(self.tmp / INDEX_FILE, index)
        meta = {"format": STORE_FORMAT, "shape": [self.n, *self.image_shape], **meta,
                "splits": splits}
        (self.tmp / SPLITS_FILE).write_text(json.dumps(splits, indent=2) + "\n")
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        _replace_dir(self.tmp, self.target)
        return self.target


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing an old store there."""
    old = None
    if dst.exists():
        if not (dst / META_FILE).is_file() and any(dst.iterdir()):
            raise DataError(dst, "folder exists and is not a slice store; refusing to overwrite "
                            "it", "choose another --store folder or empty this one")
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def store_writer(target: str | os.PathLike[str], image_shape: tuple[int, int]
                 ) -> Iterator[StoreWriter]:
    """Context manager giving a ``StoreWriter`` whose temporary folder is removed on any error."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    writer = StoreWriter(target, tmp, image_shape)
    try:
        yield writer
    finally:
        if not writer._f.closed:
            writer._f.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
