"""Evaluation on a split with fixed corruption: run the compiled eval (and baseline) steps over
all batches, gather per-sample results, and summarise them: every method side by side (the
network, the corrupted input, the oracle bound, the training-free estimate), means and the
per-parameter breakdown."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from kmri_jax import sim
from kmri_jax.train.sharding import shard_batch



def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host sharded) array as one numpy array on every process."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def run_eval(
    eval_step: Callable[[Any, Mapping[str, jax.Array]], Mapping[str, jax.Array]],
    state: Any,
    batches: Iterable[Mapping[str, np.ndarray]],
    mesh: Mesh,
    *,
    extras: Sequence[Mapping[str, jax.Array]] | None = None,
    collect: Mapping[str, list[jax.Array]] | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample results over all ``batches`` (padding removed): ``{name: [N]}``.

    ``eval_step(state, batch)``; with ``state=None``, ``eval_step(batch)`` (a baseline step).
    ``extras``: per batch, device arrays added to the sharded batch (e.g. the search's
    displacement a baseline step found for it). ``collect``: ``{output name: list}``; each
    batch's output of that name is appended to the list as the device array it is (sharded
    like the batch, padding kept): the ``extras`` of a later run over the same batches.
    """
    parts: list[dict[str, np.ndarray]] = []
    for i, batch in enumerate(batches):
        sharded = shard_batch(batch, mesh)
        if extras is not None:
            sharded = {**sharded, **extras[i]}
        out = eval_step(sharded) if state is None else eval_step(state, sharded)
        for name, found in (collect or {}).items():
            found.append(out[name])
        parts.append({k: to_host(v) for k, v in out.items()})
    if not parts:
        raise ValueError("the evaluation split yielded no batches: is it empty? check the split file")
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = merged.pop("weight") > 0
    return {k: v[keep] for k, v in merged.items()}


_METRICS = {"ssim": "SSIM", "psnr": "PSNR", "nrmse": "NRMSE"}


def summarize(per_sample: Mapping[str, np.ndarray],
              grid_table: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
    """Means over samples for every method present, the gain over the input, and means per A,
    f, R, SNR value (and per A_pe, rot value when ``grid_table``, the run's
    ``Corruption.grid_table()``, varies them; default: the seed's grid).

    The network's keys keep the seed's names (``val_loss``, ``val_SSIM``, ``val_PSNR``,
    ``val_NRMSE``); each other method ``m`` of ``input``, ``oracle``, ``estimate`` gives
    ``m_SSIM``, ... (``motion``: the motion network's displacement undone, zero-filled);
    ``gain_SSIM``, ... is the network's over the input; the displacement RMS
    error (px, after the best constant) is ``val_disp_rmse`` / ``estimate_disp_rmse`` /
    ``input_disp_rmse`` (no motion estimated). Per value: e.g. ``by_A/2/val_SSIM``,
    ``by_A/2/oracle_SSIM``, ``by_A/2/estimate_disp_rmse``.
    """
    out: dict[str, float] = {}
    prefixes = {"val": ""} if "ssim" in per_sample else {}
    prefixes.update({m: f"{m}_" for m in ("input", "oracle", "estimate", "motion")
                     if f"{m}_ssim" in per_sample})
    if "loss" in per_sample:
        out["val_loss"] = float(np.mean(per_sample["loss"]))

    def add(sel: np.ndarray | slice, label: str, metrics: Mapping[str, str]) -> None:
        for name, prefix in prefixes.items():
            for key, metric in metrics.items():
                if prefix + key in per_sample:
                    out[f"{label}{name}_{metric}"] = float(np.mean(per_sample[prefix + key][sel]))

    add(slice(None), "", {**_METRICS, "disp_rmse": "disp_rmse"})
    if "val" in prefixes and "input" in prefixes:
        for metric in _METRICS.values():
            out[f"gain_{metric}"] = out[f"val_{metric}"] - out[f"input_{metric}"]
    combos = per_sample["combination"]
    if np.all(combos >= 0):
        table = sim.grid_table() if grid_table is None else grid_table
        for short, values in table.items():
            per_value = values[combos]
            for value in np.unique(per_value):
                add(per_value == value, f"by_{short}/{value:g}/",
                    {"ssim": "SSIM", "psnr": "PSNR", "disp_rmse": "disp_rmse"})
    return out


def merge(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample results of several passes over the same batches as one table (the
    bookkeeping keys ``combination`` must agree)."""
    out: dict[str, np.ndarray] = {}
    for part in parts:
        if "combination" in out and not np.array_equal(out["combination"], part["combination"]):
            raise ValueError("per-sample results of different batches cannot be merged")
        out.update(part)
    return out
