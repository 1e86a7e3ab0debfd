"""Checkpoints for the commands: find one, restore the model from it, run it; and write
converted weights (the seed's PyTorch U-Net) as a checkpoint of our own.

A checkpoint path may be a training workdir (``<workdir>/checkpoints/<step>``; the latest step
is used unless ``step`` is given), its ``checkpoints`` folder, or one step folder. The run's
config is read from the step's metadata (``Checkpointer.metadata``; the loop writes it with
``"config": config.to_dict()``; ``Checkpointer.run_config``) over
:func:`kmri_jax.config.base_config` defaults, and the
state is restored through :class:`kmri_jax.train.checkpointing.Checkpointer` onto a state built
from that config, so a checkpoint of another shape fails with one ``CheckpointError``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from kmri_jax.config import base_config
from kmri_jax.tasks.errors import TaskError
from kmri_jax.train.checkpointing import Checkpointer, CheckpointError, abstract_like
from kmri_jax.train import networks
from kmri_jax.train.state import ModelDefs, TrainState, create_state, run_model

__all__ = ["LoadedModel", "config_from_dict", "load_model", "resolve_checkpoint",
           "save_model_checkpoint"]


@dataclasses.dataclass
class LoadedModel:
    """A restored model with the config it was trained with."""

    state: TrainState
    defs: ModelDefs
    config: ml_collections.ConfigDict
    step: int
    step_dir: Path
    workdir: Path

    @property
    def image_shape(self) -> tuple[int, int]:
        """The (ny, nx) slice size the model was trained on."""
        return int(self.config.data.ny), int(self.config.data.nx)

    @property
    def reads_coils(self) -> bool:
        """Whether the network also reads every coil's k-space (``model.input = "coils"``)."""
        return self.config.model.get("input", "combined") == "coils"

    def predictor(self):
        """``f(kspace [B, ny, nx] complex64, mask [B, ny] bool, scale [B], coil_kspace=None)
        -> [B, 2, ny, nx]`` float32 corrected k-space channels divided by ``scale``: the
        network of the checkpoint's ``model.kind`` (:func:`kmri_jax.train.networks.forward`),
        jitted, evaluation mode. ``coil_kspace [B, C, ny, nx]``: for a network that reads
        coils (:attr:`reads_coils`)."""
        defs, params, stats = self.defs, self.state.params, self.state.batch_stats
        kind = str(self.config.model.kind)
        options = dict(self.config.correct)

        @jax.jit
        def run(params, stats, kspace, mask, scale, coil_kspace):
            def bound(fn):
                return run_model(defs, params, stats, fn, train=False)[0]

            return networks.forward(bound, kspace, mask, scale, kind=kind,
                                    estimate_options=options, coil_kspace=coil_kspace)[0]

        return lambda kspace, mask, scale, coil_kspace=None: run(params, stats, kspace, mask,
                                                                  scale, coil_kspace)


def _merge(base: ml_collections.ConfigDict, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if key in base and isinstance(base[key], ml_collections.ConfigDict) and isinstance(
                value, dict):
            _merge(base[key], value)
        else:
            base[key] = value


def config_from_dict(values: dict[str, Any]) -> ml_collections.ConfigDict:
    """A checkpoint's stored config over the current defaults (keys added since are filled)."""
    config = base_config()
    config.unlock()
    _merge(config, values)
    # Checkpoints from before a key existed were trained with the behaviour of that time.
    stored = values.get("model", {})
    for key, then in (("residual", False), ("input_scale", "clean"), ("kind", "kspace_unet")):
        if key not in stored:
            config.model[key] = then
    return config


def _optimizer() -> optax.GradientTransformation:
    """An optimizer with the loop's state structure (``optax.adam`` with a schedule)."""
    return optax.adam(optax.constant_schedule(1e-3))


def resolve_checkpoint(path: str | os.PathLike[str], step: int | None = None
                       ) -> tuple[Path, int]:
    """(workdir, step) of a workdir, ``checkpoints`` folder or step folder.

    Raises:
      TaskError: the path does not exist or holds no checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise TaskError(f"checkpoint {os.fspath(path)!r} does not exist; pass a training "
                        "workdir, or a step folder <workdir>/checkpoints/<step>")
    path = path.resolve()  # Orbax wants absolute paths
    if (path / "state").is_dir() and path.name.isdigit():
        if step is not None and step != int(path.name):
            raise TaskError(f"--step {step} contradicts the step folder {os.fspath(path)!r}")
        return path.parent.parent, int(path.name)
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = sorted(int(p.name) for p in folder.iterdir()
                   if p.is_dir() and p.name.isdigit() and (p / "state").is_dir()) \
        if folder.is_dir() else []
    if not steps:
        raise TaskError(f"no kmri_jax checkpoint in {os.fspath(path)!r} (expected "
                        "<workdir>/checkpoints/<step>/state); train one with kmri-train or "
                        "convert seed weights with tools/import_torch_unet.py")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise TaskError(f"no checkpoint for --step {step} in {os.fspath(folder)!r} "
                        f"(available: {steps})")
    return folder.parent, step


def load_model(path: str | os.PathLike[str], *, step: int | None = None) -> LoadedModel:
    """Restore the model of a checkpoint (see the module doc).

    Raises:
      TaskError: no checkpoint at ``path``.
      CheckpointError: unreadable, or its state does not match its own config.
    """
    workdir, step = resolve_checkpoint(path, step)
    step_dir = workdir / "checkpoints" / str(step)
    with Checkpointer(workdir, async_save=False) as ckpt:
        config = config_from_dict(ckpt.run_config(step))
        try:
            state, defs = create_state(int(config.seed), model_config=config.model,
                                       tx=_optimizer(),
                                       in_channels=networks.input_channels(config))
        except (TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"the config stored in {step_dir} cannot build a model "
                                  f"({type(e).__name__}: {e}).") from None
        restored = ckpt.restore(abstract_like(state), step=step)
    return LoadedModel(restored.state, defs, config, step, step_dir, workdir)


def save_model_checkpoint(workdir: str | os.PathLike[str], config: ml_collections.ConfigDict,
                          params_state: Any, stats_state: Any, *,
                          metadata: dict[str, Any] | None = None) -> Path:
    """Write step 0 of ``<workdir>/checkpoints`` holding the given U-Net params and BatchNorm
    statistics (NNX states), a fresh optimizer state, and ``config`` in the metadata, as the
    training loop lays it out: ``kmri-infer`` reads it, and ``kmri-train`` with the same
    ``--workdir`` (and a config of the same model size) starts training from it.

    Raises:
      TaskError: ``workdir`` already holds checkpoints.
    """
    workdir = Path(workdir)
    if (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir()):
        raise TaskError(f"{os.fspath(workdir)!r} already holds checkpoints; choose a new folder")
    tx = _optimizer()
    state, _ = create_state(int(config.seed), model_config=config.model, tx=tx)
    state = state._replace(params=params_state, batch_stats=stats_state,
                           opt_state=tx.init(params_state))
    meta = {"epoch": 0, "config": config.to_dict(), **(metadata or {})}
    with Checkpointer(workdir, async_save=False) as ckpt:
        ckpt.save(0, state, metadata=meta)
    return workdir / "checkpoints" / "0"


def scale_of(kspace: np.ndarray) -> np.ndarray:
    """``max|K| + 1e-8`` per slice, ``[n, ny, nx] -> [n]`` (the seed's normalisation)."""
    return (np.abs(kspace).max(axis=(-2, -1)) + 1e-8).astype(np.float32)
