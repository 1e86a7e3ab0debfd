"""Data: NIfTI/BIDS volumes -> prepared slice store -> Grain batches of clean slices (host side).

Typical use (the training loop)::

    store_path = ensure_store(config.data_root, config.store_dir)   # phantom data if no root
    store = SliceStore(store_path)
    it = train_iterator(store, batch_size=32, seed=0,
                        shard_index=jax.process_index(), shard_count=jax.process_count())
    batch = next(it)               # dict per the batch contract (docs/architecture.md)
    state = it.get_state()         # save with the checkpoint; it.set_state(state) resumes
    for batch in eval_batches(store, split="val", batch_size=32): ...

Modules: ``discovery`` (find volumes, TR/TE), ``splits``, ``preprocess``, ``store`` (format,
``SliceStore``), ``build`` (dataset -> store, ``ensure_store``), ``pipeline`` (Grain),
``volume_source`` (no-store path), ``phantom`` (built-in data), ``errors``.
"""

from kmri_jax.data.build import BuildReport, build_store, ensure_store, phantom_dir_for
from kmri_jax.data.discovery import (DEFAULT_TE_S, DEFAULT_TR_S, VolumeInfo, discover_volumes,
                                     find_volume_files)
from kmri_jax.data.errors import DataError
from kmri_jax.data.phantom import PHANTOM_VERSIONS, phantom_volume, write_phantom_dataset
from kmri_jax.data.pipeline import (EvalBatches, SliceSource, eval_batches, steps_per_epoch,
                                    train_dataset, train_iterator)
from kmri_jax.data.preprocess import (PreparedVolume, PreprocessOptions, crop_or_pad,
                                      load_volume, preprocess_volume)
from kmri_jax.data.splits import SPLIT_NAMES, load_splits, make_splits, save_splits
from kmri_jax.data.store import INDEX_DTYPE, SliceStore
from kmri_jax.data.volume_source import VolumeSource

__all__ = [
    "BuildReport", "DEFAULT_TE_S", "DEFAULT_TR_S", "DataError", "EvalBatches", "INDEX_DTYPE",
    "PreparedVolume", "PreprocessOptions", "SPLIT_NAMES", "SliceSource", "SliceStore",
    "VolumeInfo", "VolumeSource", "build_store", "crop_or_pad", "discover_volumes",
    "ensure_store", "eval_batches", "find_volume_files", "load_splits", "load_volume",
    "make_splits", "PHANTOM_VERSIONS", "phantom_dir_for", "phantom_volume", "preprocess_volume",
    "save_splits", "steps_per_epoch", "train_dataset", "train_iterator", "write_phantom_dataset",
]
