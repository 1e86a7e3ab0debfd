"""Grain pipelines over a slice source: shuffled training batches and in-order evaluation
batches, both following the batch contract (docs/architecture.md).

Records. A split's rows (ascending) are expanded into records: with ``combinations_per_slice``
``K > 0`` each row becomes ``K`` records with ``combination`` ``0..K-1`` (record ``r`` = row
``r // K``, combination ``r % K``: the seed replica's fixed-corruption dataset); with ``K = 0``
one record per row with ``combination = -1``.

Training order. Epoch ``e`` visits the records in the order
``numpy.random.default_rng([seed, e]).permutation(n_records)``. Global step ``j`` of epoch ``e``
(``j = e * steps_per_epoch + b``) covers the permuted positions ``[b * G, (b + 1) * G)`` with
``G = batch_size * shard_count``; host ``shard_index`` takes the contiguous block of positions
``b * G + shard_index * batch_size + i`` (``i < batch_size``). So the hosts' batches at a step,
concatenated in host order (as ``jax.make_array_from_process_local_data`` places them on a
process-ordered mesh), are exactly the single-host global batch for any ``shard_count`` with
the same ``G``: the same samples in the same order, hence the same per-sample corruption keys.
Each record is read by exactly one host, and ``steps_per_epoch = n_records // G`` (the
remainder of an epoch, different records each epoch, is dropped). Each element of the Grain
dataset is a whole batch, read from the store by one pass over the memory map; Grain supplies
the thread prefetching, the worker processes (batches come back through shared memory) and
the iterator state (``get_state``/``set_state`` resume exactly at the next step).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import grain
from absl import flags as absl_flags
import numpy as np

from kmri_jax.data.errors import DataError
from kmri_jax.data.store import SliceStore

Batch = dict[str, np.ndarray]


class SliceSource(Protocol):
    """What the pipelines read from (``SliceStore``, ``VolumeSource``)."""

    def __len__(self) -> int: ...
    def indices(self, split: str | None = None) -> np.ndarray: ...
    def read(self, rows: np.ndarray) -> Batch: ...


def open_source(store: SliceSource | str | os.PathLike[str]) -> SliceSource:
    """A store path -> ``SliceStore``; a source is returned as is."""
    if isinstance(store, (str, os.PathLike)):
        return SliceStore(store)
    return store


def _records(source: SliceSource, split: str | None, combinations: Sequence[int]
             ) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(source.indices(split), dtype=np.int64)
    if len(rows) == 0:
        raise DataError(getattr(source, "path", None), f"split {split!r} has no slices",
                        "prepare the store with a split that gives this split subjects (see "
                        "splits.json), or use another split")
    return rows, np.asarray(combinations, dtype=np.int32)


class _BatchReader:
    """Reads the batch of given record positions (picklable into worker processes)."""

    def __init__(self, source: SliceSource, rows: np.ndarray, combos: np.ndarray):
        self.source, self.rows, self.combos = source, rows, combos
        self.n_records = len(rows) * len(combos)

    def read(self, records: np.ndarray, weight: np.ndarray) -> Batch:
        k = len(self.combos)
        batch = self.source.read(self.rows[records // k])
        batch["combination"] = self.combos[records % k]
        batch["weight"] = weight.astype(np.float32)
        return batch


class _TrainStep:
    """Grain map: global step -> this host's batch."""

    def __init__(self, reader: _BatchReader, *, batch_size: int, seed: int, shuffle: bool,
                 shard_index: int, shard_count: int):
        self.reader, self.batch_size, self.seed, self.shuffle = reader, batch_size, seed, shuffle
        self.shard_index, self.shard_count = shard_index, shard_count
        self.global_batch = batch_size * shard_count
        self.steps_per_epoch = reader.n_records // self.global_batch

    @functools.lru_cache(maxsize=2)  # noqa: B019 (one object per pipeline)
    def order(self, epoch: int) -> np.ndarray:
        """The record order of an epoch, ``[n_records] int64``."""
        if not self.shuffle:
            return np.arange(self.reader.n_records)
        return np.random.default_rng([self.seed, epoch]).permutation(self.reader.n_records)

    def positions(self, step: int) -> tuple[int, np.ndarray]:
        epoch, b = divmod(int(step), self.steps_per_epoch)
        return epoch, _host_block(b, self.batch_size, self.shard_index, self.shard_count)

    def records(self, step: int) -> np.ndarray:
        epoch, pos = self.positions(step)
        return self.order(epoch)[pos]

    def __call__(self, step: int) -> Batch:
        return self.reader.read(self.records(step), np.ones(self.batch_size, np.float32))


def _host_block(batch: int, batch_size: int, shard_index: int, shard_count: int) -> np.ndarray:
    """Positions of host ``shard_index``'s share of global batch ``batch``, ``[batch_size]``."""
    start = (batch * shard_count + shard_index) * batch_size
    return start + np.arange(batch_size)


def _check_shard(shard_index: int, shard_count: int, batch_size: int) -> None:
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise DataError(None, f"shard_index {shard_index} / shard_count {shard_count} invalid",
                        "use 0 <= shard_index < shard_count (jax.process_index(), "
                        "jax.process_count())")
    if batch_size < 1:
        raise DataError(None, f"batch_size {batch_size} must be positive",
                        "pass the per-host batch size")


def steps_per_epoch(store: SliceSource | str | os.PathLike[str], *, batch_size: int,
                    split: str = "train", shard_count: int = 1,
                    combinations_per_slice: int = 0) -> int:
    """Training steps per epoch: ``n_records // (batch_size * shard_count)``."""
    source = open_source(store)
    n = len(source.indices(split)) * max(combinations_per_slice, 1)
    return n // (batch_size * shard_count)


def train_dataset(
    store: SliceSource | str | os.PathLike[str],
    *,
    batch_size: int,
    seed: int,
    split: str = "train",
    shard_index: int = 0,
    shard_count: int = 1,
    combinations_per_slice: int = 0,
    num_epochs: int | None = None,
    shuffle: bool = True,
    worker_count: int = 0,
    prefetch: int = 2,
    read_threads: int = 1,
) -> grain.IterDataset:
    """The training pipeline as a Grain ``IterDataset`` of batches (see module doc for order).

    Args:
      store: a ``SliceStore``, its path, or another ``SliceSource`` (e.g. ``VolumeSource``).
      batch_size: per-host batch size ``B``; every batch is full (drop remainder).
      seed: shuffle seed; same seed -> same global order on any number of hosts.
      split: which split to read.
      shard_index, shard_count: this host's shard (``jax.process_index()``,
        ``jax.process_count()``).
      combinations_per_slice: ``K > 0`` expands each slice into ``K`` records with
        ``combination = 0..K-1``; 0: ``combination = -1``.
      num_epochs: epochs to run; None repeats forever.
      shuffle: False reads records in order (for debugging).
      worker_count: Grain worker processes (0: read in this process, the default and the
        fastest for the store: a batch is one memcpy-bound pass over the memory map, and moving
        a 40 MB batch through a new shared-memory block per batch costs more than reading it;
        see docs/benchmarks.md. Workers pay off for a ``VolumeSource``, which decompresses).
      prefetch: batches buffered (per worker, or by the reading threads).
      read_threads: threads reading batches in each process (0: synchronous).

    Returns:
      ``grain.IterDataset``; ``iter()`` gives a ``grain.DatasetIterator`` whose batches are
      dicts per the batch contract: ``image [B, ny, nx] float32``, ``valid_shape [B, 2] int32``,
      ``tr``, ``te [B] float32``, ``volume``, ``slice``, ``combination [B] int32``,
      ``weight [B] float32`` (all 1).
    """
    _check_shard(shard_index, shard_count, batch_size)
    source = open_source(store)
    combos = range(combinations_per_slice) if combinations_per_slice > 0 else [-1]
    rows, combos = _records(source, split, list(combos))
    step_fn = _TrainStep(_BatchReader(source, rows, combos), batch_size=batch_size, seed=seed,
                         shuffle=shuffle, shard_index=shard_index, shard_count=shard_count)
    if step_fn.steps_per_epoch == 0:
        raise DataError(getattr(source, "path", None),
                        f"split {split!r} has {step_fn.reader.n_records} records, fewer than one "
                        f"global batch ({batch_size} x {shard_count} hosts)",
                        "lower the batch size or prepare more data")
    total = sys.maxsize if num_epochs is None else step_fn.steps_per_epoch * num_epochs
    ds = grain.MapDataset.range(total).map(step_fn)
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                 prefetch_buffer_size=prefetch))
    if worker_count > 0:
        # Grain's worker processes read absl flags; outside an absl app nothing parsed them.
        if not absl_flags.FLAGS.is_parsed():
            absl_flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=worker_count, per_worker_buffer_size=prefetch))
    return it_ds


def train_iterator(store: SliceSource | str | os.PathLike[str], **kwargs: Any
                   ) -> grain.DatasetIterator:
    """``iter(train_dataset(store, **kwargs))``: a ``grain.DatasetIterator`` with
    ``get_state()`` / ``set_state(state)`` for exact resume."""
    return iter(train_dataset(store, **kwargs))


class EvalBatches:
    """An evaluation pass over a split, in store order, once.

    Records are the split's rows in ascending order, each expanded over ``combinations``
    (``None``: one record with ``combination = -1``). The record sequence is padded to a
    multiple of ``G = batch_size * shard_count`` by repeating the last record with weight 0
    (a real slice, so per-sample metrics stay finite; multiply them by ``weight``). Host
    ``shard_index`` takes positions ``b * G + shard_index * batch_size + i`` of batch ``b``.
    """

    def __init__(self, store: SliceSource | str | os.PathLike[str], *, split: str = "val",
                 batch_size: int, combinations: Sequence[int] | None = None,
                 shard_index: int = 0, shard_count: int = 1):
        _check_shard(shard_index, shard_count, batch_size)
        source = open_source(store)
        rows, combos = _records(source, split, [-1] if combinations is None else
                                list(combinations))
        if len(combos) == 0:
            raise DataError(None, "combinations is empty", "pass None or a non-empty list")
        self._reader = _BatchReader(source, rows, combos)
        self.batch_size, self.shard_index, self.shard_count = batch_size, shard_index, shard_count
        self.n_records = self._reader.n_records
        self._g = batch_size * shard_count

    def __len__(self) -> int:
        return math.ceil(self.n_records / self._g)

    def __iter__(self) -> Iterator[Batch]:
        for b in range(len(self)):
            pos = _host_block(b, self.batch_size, self.shard_index, self.shard_count)
            weight = (pos < self.n_records).astype(np.float32)
            yield self._reader.read(np.minimum(pos, self.n_records - 1), weight)


def eval_batches(store: SliceSource | str | os.PathLike[str], *, split: str = "val",
                 batch_size: int, combinations: Sequence[int] | None = None,
                 shard_index: int = 0, shard_count: int = 1) -> EvalBatches:
    """An iterable (with ``len``) of evaluation batches; see ``EvalBatches``."""
    return EvalBatches(store, split=split, batch_size=batch_size, combinations=combinations,
                       shard_index=shard_index, shard_count=shard_count)
