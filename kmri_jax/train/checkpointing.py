"""Orbax checkpoints of the train state, run metadata and the Grain iterator state.

One ``orbax.checkpoint.CheckpointManager`` over ``<workdir>/checkpoints``. Every step directory
holds three items:

- ``state``: the train state, any pytree of ``jax.Array`` (typed PRNG keys included, Orbax
  stores their key data and restores the typed key);
- ``meta``: a JSON dict (step, epoch, config summary, metrics, ...);
- ``data``: the data-iterator state, one JSON file per process (Grain's Orbax handler), so each
  host resumes its own shard of the input pipeline.

Retention: the latest ``max_to_keep`` checkpoints, plus the best one by a validation metric
(``best_metric``, ``best_mode``) among the checkpoints saved with that metric. Saves are
asynchronous: call :meth:`Checkpointer.wait_until_finished` (or :meth:`Checkpointer.close`, or
leave the ``with`` block) before the process exits.

Every failure to read a checkpoint (tree structure or shapes that differ from the current
config, unreadable files) raises one :class:`CheckpointError` that names the path and what to
do. Nothing is ever deleted because a restore failed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from grain import checkpoint as grain_checkpoint
from orbax.checkpoint import checkpoint_managers

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "Restored",
    "abstract_like",
]

log = logging.getLogger(__name__)

PyTree = Any
DataState = dict[str, Any] | bytes

_STATE, _META, _DATA = "state", "meta", "data"
_MAX_LISTED_DIFFERENCES = 6


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read back; the message names the path and the fix."""


class Restored(NamedTuple):
    """What :meth:`Checkpointer.restore` returns (unpacks as a 3-tuple)."""

    state: PyTree
    """The train state, laid out with the shardings of the abstract state."""
    metadata: dict[str, Any]
    """The JSON metadata saved with it; always has ``"step"``."""
    data_state: DataState | None
    """The data-iterator state as ``get_state()`` returned it (dict or bytes), or None."""


def abstract_like(tree: PyTree, *, sharding: jax.sharding.Sharding | None = None) -> PyTree:
    """``jax.ShapeDtypeStruct`` tree for ``tree`` (arrays or ShapeDtypeStructs).

    Args:
      tree: a pytree of arrays, e.g. a freshly initialised train state or
        ``jax.eval_shape(init_fn, ...)``.
      sharding: the sharding every leaf is restored onto (e.g. a replicated
        ``NamedSharding``); None keeps each leaf's own ``.sharding`` (or the default device).
    """

    def leaf(x: Any) -> jax.ShapeDtypeStruct:
        s = sharding if sharding is not None else getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)

    return jax.tree.map(leaf, tree)


class _DataStateBox:
    """Adapter giving a plain iterator state the ``get_state/set_state`` API Grain's handler uses.

    Grain's handler writes ``get_state().decode()`` to ``process_<i>-of-<n>.json``; we wrap the
    state in a small JSON envelope that records whether it was a dict (``DatasetIterator``) or
    bytes (``DataLoaderIterator``) so it is returned in the same form.
    """

    def __init__(self, state: DataState | None = None) -> None:
        self.state = state

    def get_state(self) -> bytes:
        if isinstance(self.state, bytes):
            envelope = {"format": "bytes", "state": self.state.decode()}
        else:
            envelope = {"format": "dict", "state": self.state}
        return json.dumps(envelope, indent=1, default=_json_default).encode()

    def set_state(self, raw: bytes) -> None:
        envelope = json.loads(raw.decode())
        state = envelope["state"]
        self.state = state.encode() if envelope["format"] == "bytes" else state

    def start_prefetch(self) -> None:  # Called by Grain's handler after restore.
        pass


def _json_default(x: Any) -> Any:
    """JSON encoder fallback for numpy / JAX scalars and small arrays."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _to_json(obj: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Round-trips ``obj`` through JSON now, so a bad value fails here, not in a save thread."""
    try:
        return json.loads(json.dumps(dict(obj), default=_json_default))
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint {what} must be JSON-serialisable: {e}") from e


def _path_names(path: tuple[Any, ...]) -> str:
    """A keypath as ``a/b/0/c``, the same for dicts, attributes, NamedTuples and sequences."""
    names = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                names.append(str(getattr(k, attr)))
                break
        else:
            names.append(str(k))
    return "/".join(names)


def _stored_shape(leaf: Any) -> tuple[int, ...]:
    """The on-disk shape of an abstract leaf (typed PRNG keys are stored as their key data)."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        sds = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        return tuple(jax.eval_shape(jax.random.key_data, sds).shape)
    return tuple(leaf.shape)


def _tree_differences(abstract: PyTree, stored: PyTree) -> list[str]:
    """Human-readable differences between the expected and the stored tree (empty if none)."""
    want = {_path_names(p): _stored_shape(x) for p, x in jax.tree_util.tree_leaves_with_path(abstract)}
    have = {
        _path_names(p): tuple(x.shape)
        for p, x in jax.tree_util.tree_leaves_with_path(stored)
        if hasattr(x, "shape")
    }
    diffs = [f"missing in checkpoint: {k} {want[k]}" for k in want if k not in have]
    diffs += [f"not in current state: {k} {have[k]}" for k in have if k not in want]
    diffs += [
        f"shape of {k}: checkpoint {have[k]}, current {want[k]}"
        for k in want
        if k in have and have[k] != want[k]
    ]
    return diffs


def _metric_fn(name: str, mode: Literal["min", "max"]) -> Callable[[Mapping[str, Any]], float]:
    """Ranks checkpoints by ``metrics[name]``; a NaN or missing value ranks worst."""
    worst = -math.inf if mode == "max" else math.inf

    def get(metrics: Mapping[str, Any]) -> float:
        value = metrics.get(name) if isinstance(metrics, Mapping) else None
        if value is None:
            return worst
        value = float(value)
        return worst if math.isnan(value) else value

    return get


class Checkpointer:
    """Saves and restores train checkpoints under ``<workdir>/checkpoints``.

    Example::

        with Checkpointer(workdir, max_to_keep=3, best_metric="val_SSIM", best_mode="max") as ckpt:
            if ckpt.latest_step() is not None:
                state, meta, data_state = ckpt.restore(abstract_like(state, sharding=repl))
            ...
            ckpt.save(step, state, metadata={"epoch": e}, data_state=it.get_state(),
                      metrics={"val_SSIM": ssim})
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        max_to_keep: int = 3,
        best_metric: str | None = None,
        best_mode: Literal["min", "max"] = "max",
        async_save: bool = True,
    ) -> None:
        """Opens (and creates) ``<workdir>/checkpoints``.

        Args:
          workdir: the run directory; checkpoints go to ``workdir/checkpoints``.
          max_to_keep: how many of the most recent checkpoints to keep (>= 1).
          best_metric: key of ``metrics`` (see :meth:`save`) whose best checkpoint is kept on
            top of the latest ones; None keeps only the latest.
          best_mode: ``"max"`` (e.g. SSIM, PSNR) or ``"min"`` (e.g. loss) for ``best_metric``.
          async_save: write in a background thread (the default).
        """
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        # Orbax needs an absolute path (a relative workdir failed in the async writer).
        self.directory = epath.Path(os.path.abspath(workdir)) / "checkpoints"
        self.best_metric = best_metric
        policies: list[Any] = [checkpoint_managers.LatestN(n=max_to_keep)]
        best_fn = None
        if best_metric is not None:
            best_fn = _metric_fn(best_metric, best_mode)
            policies.append(
                checkpoint_managers.BestN(
                    get_metric_fn=best_fn,
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            best_fn=best_fn,
            best_mode=best_mode,
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save,
            create=True,
        )
        handlers = {
            _STATE: ocp.StandardCheckpointHandler(),
            _META: ocp.JsonCheckpointHandler(),
            _DATA: grain_checkpoint.CheckpointHandler(),
        }
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_handlers=handlers
            )
        except Exception as e:  # Unreadable step metadata, permissions, ...
            raise CheckpointError(
                f"cannot open the checkpoint directory {self.directory}: {_first_line(e)}. "
                "Fix or move that directory, or use another --workdir."
            ) from e

    # -- queries ---------------------------------------------------------------------------

    def latest_step(self) -> int | None:
        """The newest saved step, or None when the directory holds no checkpoint."""
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The kept step with the best ``best_metric`` (the latest step if none is tracked)."""
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        """All kept steps, ascending."""
        return sorted(self._manager.all_steps())

    def step_path(self, step: int) -> epath.Path:
        """The directory of one checkpoint step."""
        return self.directory / str(step)

    # -- save ------------------------------------------------------------------------------

    def save(
        self,
        step: int,
        state: PyTree,
        *,
        metadata: Mapping[str, Any] | None = None,
        data_state: DataState | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> bool:
        """Starts saving one checkpoint (asynchronously); call on every process.

        Args:
          step: the global train step (the checkpoint's name).
          state: the train state pytree of ``jax.Array``.
          metadata: JSON-able run info (epoch, config summary, ...); ``"step"`` is added.
          data_state: this process's data-iterator ``get_state()`` (dict or bytes), or None.
          metrics: validation metrics for ranking (must contain ``best_metric`` to compete for
            "best"); also stored in the metadata under ``"metrics"``.

        Returns:
          True if a save was started; False if ``step`` is already saved (nothing written).
        """
        step = int(step)
        if step in self._manager.all_steps():
            log.info("checkpoint for step %d already exists; not saving again", step)
            return False
        meta = _to_json(metadata or {}, what="metadata")
        meta["step"] = step
        ranked = None
        if metrics is not None:
            meta["metrics"] = _to_json(metrics, what="metrics")
            if self.best_metric is not None and self.best_metric in meta["metrics"]:
                ranked = meta["metrics"]
        args: dict[str, Any] = {
            _STATE: ocp.args.StandardSave(state),
            _META: ocp.args.JsonSave(meta),
        }
        if data_state is not None:
            box = _DataStateBox(data_state)
            box.get_state()  # Fail now on a non-JSON state, not in the writer.
            args[_DATA] = grain_checkpoint.CheckpointSave(box)
        saved = self._manager.save(
            step, args=ocp.args.Composite(**args), metrics=ranked, force=True
        )
        if saved:
            log.info("saving checkpoint %s", self.step_path(step))
        return bool(saved)

    def wait_until_finished(self) -> None:
        """Blocks until every started save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- restore ---------------------------------------------------------------------------

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of one checkpoint (the latest by default), without its arrays."""
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}.")
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
            )
        except Exception as e:
            raise CheckpointError(
                f"cannot read the metadata of the checkpoint {self.step_path(step)}: "
                f"{_first_line(e)}. It was left untouched; move that step directory away to "
                "resume from an older one, or use another --workdir."
            ) from e
        return dict(restored[_META] or {})

    def restore(self, abstract_state: PyTree, *, step: int | None = None) -> Restored:
        """Reads one checkpoint back onto the shardings of ``abstract_state``.

        Args:
          abstract_state: pytree of ``jax.ShapeDtypeStruct`` (with ``sharding``) of the same
            structure as the saved state, e.g. ``abstract_like(state, sharding=replicated)``.
          step: which step; None for the latest.

        Raises:
          CheckpointError: no checkpoint, a state saved with another structure or other shapes
            (e.g. a different ``model.base_channels``), or unreadable files.
        """
        self.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint to restore in {self.directory}.")
        step = int(step)
        path = self.step_path(step)
        if step not in self._manager.all_steps():
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory} "
                f"(available: {self.all_steps()})."
            )
        self._check_compatible(step, abstract_state)
        args: dict[str, Any] = {
            _STATE: ocp.args.StandardRestore(abstract_state),
            _META: ocp.args.JsonRestore(),
        }
        has_data = (path / _DATA).exists()
        box = _DataStateBox()
        if has_data:
            args[_DATA] = grain_checkpoint.CheckpointRestore(box)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as e:
            raise CheckpointError(
                f"cannot restore the checkpoint {path}: {_first_line(e)}. It may be "
                "incomplete or corrupt, or from another config; it was left untouched. "
                "Use another --workdir, the matching config, or move that step directory away "
                "to resume from an older one."
            ) from e
        metadata = dict(restored[_META] or {})
        metadata.setdefault("step", step)
        return Restored(restored[_STATE], metadata, box.state if has_data else None)

    def _check_compatible(self, step: int, abstract_state: PyTree) -> None:
        """Raises CheckpointError listing leaves whose path or shape differ from the stored ones."""
        path = self.step_path(step)
        try:
            stored = self._manager.item_metadata(step)[_STATE]
            stored_tree = getattr(stored, "tree", stored)
        except Exception as e:
            raise CheckpointError(
                f"cannot read the checkpoint {path}: {_first_line(e)}. It may be incomplete "
                "or corrupt; it was left untouched. Move that step directory away to resume "
                "from an older one, or use another --workdir."
            ) from e
        if stored_tree is None:
            raise CheckpointError(
                f"the checkpoint {path} has no readable train state; it was left untouched. "
                "Move that step directory away, or use another --workdir."
            )
        diffs = _tree_differences(abstract_state, stored_tree)
        if diffs:
            listed = "; ".join(diffs[:_MAX_LISTED_DIFFERENCES])
            more = len(diffs) - _MAX_LISTED_DIFFERENCES
            if more > 0:
                listed += f"; and {more} more"
            raise CheckpointError(
                f"the checkpoint {path} does not match the current train state "
                f"({listed}). It was written with another config (e.g. model size). "
                "Use another --workdir for this config, or the config the checkpoint was "
                "trained with."
            )


def _first_line(e: BaseException, *, limit: int = 300) -> str:
    """The first line of an exception message (no TensorStore spec dump), with its type."""
    lines = str(e).strip().splitlines()
    text = lines[0].split(" [tensorstore_spec=")[0] if lines else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}"
