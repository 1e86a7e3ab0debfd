"""Orbax checkpoints of the train state, run metadata and the Grain iterator state.

One ``orbax.checkpoint.CheckpointManager`` over ``<workdir>/checkpoints``. Every step directory
holds three items: ``state`` (the train state, any pytree of ``jax.Array``, typed PRNG keys
included), ``meta`` (a JSON dict: step, epoch, the run's config, metrics) and ``data`` (the
data-iterator state, one JSON file per process, through Grain's Orbax handler).

Retention: the latest ``max_to_keep`` checkpoints, plus the best one by a validation metric
(``best_metric``, ``best_mode``) among the checkpoints saved with a finite value of it. Saves
are asynchronous: leave the ``with`` block (or call :meth:`Checkpointer.close`) before exit.

Failures are one :class:`CheckpointError` naming the path and the fix: a checkpoint that
cannot be read (corrupt files, another structure or shapes, another model); a save that cannot
be written (a full disk is checked before writing; a write that fails anyway is reported with
the last complete step, and its partial directory removed). Nothing is deleted because a
restore failed, and Orbax's asynchronous teardown after a failure prints nothing more.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from grain import checkpoint as grain_checkpoint
from orbax.checkpoint import checkpoint_managers

from kmri_jax.config import ConfigValueError

__all__ = ["CheckpointError", "Checkpointer", "Restored", "abstract_like", "MODEL_KEYS"]

log = logging.getLogger(__name__)

PyTree = Any
DataState = dict[str, Any] | bytes

_STATE, _META, _DATA = "state", "meta", "data"
_MAX_LISTED_DIFFERENCES = 6
_TMP_MARK = ".orbax-checkpoint-tmp"
_SPACE_MARGIN_BYTES = 1 << 20

MODEL_KEYS = ("kind", "residual", "base_channels", "input")
"""``config.model`` keys that change the network's function without changing every shape; a
checkpoint is only resumed with the values it was trained with."""


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
    """``jax.ShapeDtypeStruct`` tree for ``tree``, each leaf on ``sharding`` (None: its own)."""

    def leaf(x: Any) -> jax.ShapeDtypeStruct:
        s = sharding if sharding is not None else getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)

    return jax.tree.map(leaf, tree)


class _DataStateBox:
    """A snapshot of the iterator state taken when the save starts (the iterator itself moves
    on while an asynchronous save runs), in the ``get_state/set_state`` form Grain's handler
    writes: a JSON envelope recording whether the state was a dict or bytes."""

    def __init__(self, state: DataState | None = None) -> None:
        self.state = state

    def get_state(self) -> bytes:
        bytes_state = isinstance(self.state, bytes)
        envelope = {"format": "bytes" if bytes_state else "dict",
                    "state": self.state.decode() if bytes_state else self.state}
        return json.dumps(envelope, indent=1, default=_json_default).encode()

    def set_state(self, raw: bytes) -> None:
        envelope = json.loads(raw.decode())
        state = envelope["state"]
        self.state = state.encode() if envelope["format"] == "bytes" else state

    def start_prefetch(self) -> None:  # Called by Grain's handler after restore.
        pass


def _json_default(x: Any) -> Any:
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
        attr = next((a for a in ("key", "name", "idx") if hasattr(k, a)), None)
        names.append(str(getattr(k, attr)) if attr else str(k))
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
    have = {_path_names(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_leaves_with_path(stored) if hasattr(x, "shape")}
    diffs = [f"missing in checkpoint: {k} {want[k]}" for k in want if k not in have]
    diffs += [f"not in current state: {k} {have[k]}" for k in have if k not in want]
    diffs += [f"shape of {k}: checkpoint {have[k]}, current {want[k]}"
              for k in want if k in have and have[k] != want[k]]
    return diffs


def _finite_metric(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    value = metrics.get(name) if isinstance(metrics, Mapping) else None
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _metric_fn(name: str, mode: Literal["min", "max"]) -> Callable[[Mapping[str, Any]], float]:
    """Ranks checkpoints by ``metrics[name]``; a non-finite or missing value ranks worst."""
    worst = -math.inf if mode == "max" else math.inf

    def get(metrics: Mapping[str, Any]) -> float:
        value = _finite_metric(metrics, name)
        return worst if value is None else value

    return get


def _first_line(e: BaseException, *, limit: int = 300) -> str:
    """The first line of an exception message (no TensorStore spec dump), with its type."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    for cut in (" [tensorstore_spec=", " See full TensorStore details"):
        text = text.split(cut)[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text.rstrip('. ')}"


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _unretrieved_to_debug(record: logging.LogRecord) -> bool:
    """asyncio log filter: "... exception was never retrieved" records go to our debug log."""
    if "exception was never retrieved" in str(record.msg):
        log.debug("asyncio, after a failed checkpoint read: %s", record.getMessage())
        return False
    return True


class _HeldOutput:
    """Holds what is printed to ``sys.stderr`` while Orbax reads a checkpoint.

    When one TensorStore operation fails, Orbax closes its event loop while the others are
    still completing, and their callbacks print ``RuntimeError: Event loop is closed``
    tracebacks from C++, straight to ``sys.stderr``; unawaited coroutines are finalised with
    more. On success the held text is printed as usual; after a failure it goes to the debug
    log, once the machinery has wound down, so the user sees our one message only. The tasks of
    the other reads may be garbage-collected later still (on a loaded machine, after the
    settling time), and asyncio then logs "Task exception was never retrieved" with the same
    error: after a failure those records go to the debug log too, for the rest of the process.
    """

    def __enter__(self) -> _HeldOutput:
        self._stderr, self._unraisable = sys.stderr, sys.unraisablehook
        self._sink = io.StringIO()
        sys.stderr = self._sink
        return self

    def failed(self, *, settle_s: float = 1.0) -> None:
        sys.unraisablehook = lambda *_: None
        asyncio_log = logging.getLogger("asyncio")
        if _unretrieved_to_debug not in asyncio_log.filters:
            asyncio_log.addFilter(_unretrieved_to_debug)
        gc.collect()
        time.sleep(settle_s)
        gc.collect()
        self._failed = True

    def __exit__(self, *exc: object) -> None:
        sys.stderr, sys.unraisablehook = self._stderr, self._unraisable
        held = self._sink.getvalue()
        if getattr(self, "_failed", False):
            if held:
                log.debug("Orbax printed while failing:\n%s", held)
        elif held:
            sys.stderr.write(held)


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

    def __init__(self, workdir: str | os.PathLike[str], *, max_to_keep: int = 3,
                 best_metric: str | None = None, best_mode: Literal["min", "max"] = "max",
                 async_save: bool = True, keep_hint: str = "") -> None:
        """Opens (and creates) ``<workdir>/checkpoints``.

        Args:
          workdir: the run directory; checkpoints go to ``workdir/checkpoints``.
          max_to_keep: how many of the most recent checkpoints to keep (>= 1).
          best_metric: key of ``metrics`` (see :meth:`save`) whose best checkpoint is kept on
            top of the latest ones; None keeps only the latest.
          best_mode: ``"max"`` (e.g. SSIM) or ``"min"`` (e.g. loss) for ``best_metric``.
          async_save: write in a background thread (the default).
          keep_hint: how the user lowers ``max_to_keep`` (named in a full-disk message).
        """
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        # Orbax needs an absolute path (a relative workdir failed in the async writer).
        self.directory = epath.Path(os.path.abspath(workdir)) / "checkpoints"
        self.best_metric = best_metric
        self.max_to_keep = max_to_keep
        self._keep_hint = keep_hint or "a smaller max_to_keep"
        self._pending: int | None = None  # step of a save that may still be writing
        policies: list[Any] = [checkpoint_managers.LatestN(n=max_to_keep)]
        best_fn = None
        if best_metric is not None:
            best_fn = _metric_fn(best_metric, best_mode)
            policies.append(checkpoint_managers.BestN(
                get_metric_fn=best_fn, reverse=best_mode == "min", n=1,
                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            best_fn=best_fn, best_mode=best_mode,
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save, create=True)
        handlers = {_STATE: ocp.StandardCheckpointHandler(), _META: ocp.JsonCheckpointHandler(),
                    _DATA: grain_checkpoint.CheckpointHandler()}
        if jax.process_index() == 0:
            self._remove_partial_saves()
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  item_handlers=handlers)
        except Exception as e:  # Unreadable step metadata, permissions, ...
            raise CheckpointError(
                f"cannot open the checkpoint directory {self.directory}: {_first_line(e)}. "
                "Fix or move that directory, or use another --workdir.") from e

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

    def _complete_steps(self) -> list[int]:
        """Steps with a finished directory on disk (not the manager's view, which may already
        list a save that failed)."""
        if not self.directory.exists():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir()
                      if p.name.isdigit() and (p / _STATE).exists())

    def _remove_partial_saves(self) -> None:
        """Removes the temporary directories of saves that never finished (a full disk, a
        killed process); Orbax never resumes from them."""
        if self.directory.exists():
            for p in self.directory.iterdir():
                if _TMP_MARK in p.name:
                    shutil.rmtree(os.fspath(p), ignore_errors=True)

    # -- save ------------------------------------------------------------------------------

    def save(self, step: int, state: PyTree, *, metadata: Mapping[str, Any] | None = None,
             data_state: DataState | None = None,
             metrics: Mapping[str, float] | None = None) -> bool:
        """Starts saving one checkpoint (asynchronously); call on every process.

        Args:
          step: the global train step (the checkpoint's name).
          state: the train state pytree of ``jax.Array``.
          metadata: JSON-able run info (epoch, config, ...); ``"step"`` is added.
          data_state: this process's data-iterator ``get_state()`` (dict or bytes), or None.
          metrics: validation metrics, stored in the metadata under ``"metrics"``; a finite
            ``best_metric`` among them makes the checkpoint compete for "best".

        Returns:
          True if a save was started; False if ``step`` is already saved (nothing written).

        Raises:
          CheckpointError: not enough free space for it, or an earlier save failed.
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
            if self.best_metric is not None and _finite_metric(meta["metrics"], self.best_metric) is not None:
                ranked = meta["metrics"]
        args: dict[str, Any] = {_STATE: ocp.args.StandardSave(state), _META: ocp.args.JsonSave(meta)}
        if data_state is not None:
            box = _DataStateBox(data_state)
            box.get_state()  # Fail now on a non-JSON state, not in the writer.
            args[_DATA] = grain_checkpoint.CheckpointSave(box)
        self.wait_until_finished()
        self._check_free_space(step, state)
        self._pending = step
        with self._reporting_write_errors():
            saved = self._manager.save(step, args=ocp.args.Composite(**args), metrics=ranked,
                                       force=True)
        if saved:
            log.info("saving checkpoint %s", self.step_path(step))
        return bool(saved)

    def _check_free_space(self, step: int, state: PyTree) -> None:
        needed = sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes"))
        needed = needed // max(jax.process_count(), 1) + _SPACE_MARGIN_BYTES
        self.directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(os.fspath(self.directory)).free
        if free < needed:
            raise CheckpointError(self._write_failure(
                step, f"only {_megabytes(free)} free there, a checkpoint needs about "
                f"{_megabytes(needed)}"))

    def _write_failure(self, step: int, reason: str) -> str:
        done = self._complete_steps()
        last = (f"the last complete checkpoint is step {done[-1]}, and running the same "
                "command again resumes from it" if done else "no complete checkpoint exists "
                "yet, so the run would start over")
        return (f"cannot write the checkpoint of step {step} to {self.directory}: {reason}. "
                f"Nothing of it was kept; {last}. Free space there, keep fewer checkpoints "
                f"({self._keep_hint}, now {self.max_to_keep}), or use another --workdir.")

    @contextlib.contextmanager
    def _reporting_write_errors(self) -> Iterator[None]:
        """Turns a failure of the asynchronous writer into one CheckpointError."""
        reason = None
        try:
            yield
        except CheckpointError:
            raise
        except Exception as e:
            reason = _first_line(e)
        if reason is None:
            return
        step = self._pending if self._pending is not None else -1
        self._pending = None
        with _HeldOutput() as held:
            with contextlib.suppress(Exception):
                self._manager.close()
            self._remove_partial_saves()
            held.failed()
        if "RESOURCE_EXHAUSTED" in reason or "No space left" in reason:
            free = shutil.disk_usage(os.fspath(self.directory)).free
            reason = f"the disk is full ({_megabytes(free)} free): {reason}"
        raise CheckpointError(self._write_failure(step, reason))

    def wait_until_finished(self) -> None:
        """Blocks until every started save is on disk.

        Raises:
          CheckpointError: a save failed (the message names its step and the last good one).
        """
        with self._reporting_write_errors():
            self._manager.wait_until_finished()
        self._pending = None

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        try:
            self.wait_until_finished()
        finally:
            with contextlib.suppress(Exception):
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
        with self._reporting_read_errors(
                f"cannot read the metadata of the checkpoint {self.step_path(step)}",
                "It was left untouched; move that step directory away to resume from an "
                "older one, or use another --workdir."):
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()}))
        return dict(restored[_META] or {})

    def run_config(self, step: int | None = None) -> dict[str, Any]:
        """The run config stored with one checkpoint (the training loop writes it).

        Raises:
          CheckpointError: unreadable metadata, or none holding a run config.
        """
        meta = self.metadata(step)
        if not isinstance(meta.get("config"), dict):
            raise CheckpointError(
                f"the checkpoint {self.step_path(meta.get('step', step))} has no run config in "
                "its metadata; it was not written by kmri-train or tools/import_torch_unet.py.")
        return meta["config"]

    @contextlib.contextmanager
    def _reporting_read_errors(self, what: str, fix: str) -> Iterator[None]:
        message = None
        with _HeldOutput() as held:
            try:
                yield
            except CheckpointError:
                raise
            except Exception as e:
                message = f"{what}: {_first_line(e)}. {fix}"
            if message is not None:
                held.failed()
        if message is not None:
            raise CheckpointError(message)

    def restore(self, abstract_state: PyTree, *, step: int | None = None,
                model_config: Mapping[str, Any] | None = None) -> Restored:
        """Reads one checkpoint back onto the shardings of ``abstract_state``.

        Args:
          abstract_state: pytree of ``jax.ShapeDtypeStruct`` (with ``sharding``) of the same
            structure as the saved state, e.g. ``abstract_like(state, sharding=replicated)``.
          step: which step; None for the latest.
          model_config: the current ``config.model``: its :data:`MODEL_KEYS` must equal the
            ones the checkpoint was trained with (None: not compared).

        Raises:
          ConfigValueError: the checkpoint was trained with other ``MODEL_KEYS`` values.
          CheckpointError: no checkpoint, a state of another structure or other
            shapes (e.g. a different ``model.base_channels``), or unreadable files.
        """
        self.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint to restore in {self.directory}.")
        step = int(step)
        path = self.step_path(step)
        if step not in self._manager.all_steps():
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory} "
                                  f"(available: {self.all_steps()}).")
        if model_config is not None:
            self._check_same_model(step, model_config)
        self._check_structure(step, abstract_state)
        args: dict[str, Any] = {_STATE: ocp.args.StandardRestore(abstract_state),
                                _META: ocp.args.JsonRestore()}
        has_data = (path / _DATA).exists()
        box = _DataStateBox()
        if has_data:
            args[_DATA] = grain_checkpoint.CheckpointRestore(box)
        with self._reporting_read_errors(
                f"cannot restore the checkpoint {path}",
                "It may be incomplete or corrupt, or from another config; it was left "
                "untouched. Use another --workdir, the matching config, or move that step "
                "directory away to resume from an older one."):
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        metadata = dict(restored[_META] or {})
        metadata.setdefault("step", step)
        return Restored(restored[_STATE], metadata, box.state if has_data else None)

    def _check_same_model(self, step: int, model_config: Mapping[str, Any]) -> None:
        """The one check that a checkpoint computes the same function as the current model
        (shapes are checked by :meth:`_check_structure`)."""
        stored = (self.metadata(step).get("config") or {}).get("model") or {}
        for key in MODEL_KEYS:
            if key in stored and key in model_config and stored[key] != model_config[key]:
                raise ConfigValueError(
                    f"the checkpoint {self.step_path(step)} was trained with "
                    f"model.{key}={stored[key]!r}, this config has {model_config[key]!r}: pass "
                    f"--config.model.{key}={stored[key]!r} to resume it, or use another "
                    "--workdir")

    def _check_structure(self, step: int, abstract_state: PyTree) -> None:
        """Raises CheckpointError listing leaves whose path or shape differ from the stored ones."""
        path = self.step_path(step)
        with self._reporting_read_errors(
                f"cannot read the checkpoint {path}",
                "It may be incomplete or corrupt; it was left untouched. Move that step "
                "directory away to resume from an older one, or use another --workdir."):
            stored = self._manager.item_metadata(step)[_STATE]
            stored_tree = getattr(stored, "tree", stored)
        if stored_tree is None:
            raise CheckpointError(
                f"the checkpoint {path} has no readable train state; it was left untouched. "
                "Move that step directory away, or use another --workdir.")
        diffs = _tree_differences(abstract_state, stored_tree)
        if diffs:
            listed = "; ".join(diffs[:_MAX_LISTED_DIFFERENCES])
            if len(diffs) > _MAX_LISTED_DIFFERENCES:
                listed += f"; and {len(diffs) - _MAX_LISTED_DIFFERENCES} more"
            raise CheckpointError(
                f"the checkpoint {path} does not match the current train state ({listed}). It "
                "was written with another config (e.g. model size). Use another --workdir for "
                "this config, or the config the checkpoint was trained with.")
