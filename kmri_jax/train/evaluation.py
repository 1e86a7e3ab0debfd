"""Evaluation on a split with fixed corruption: run the compiled eval step over all batches,
gather per-sample results, and summarise them (means and per-parameter breakdown)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from kmri_jax import sim
from kmri_jax.train.sharding import shard_batch

# Summary names as the seed's history.csv spells them.
_SUMMARY_NAMES = {"loss": "val_loss", "ssim": "val_SSIM", "psnr": "val_PSNR", "nrmse": "val_NRMSE"}


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
) -> dict[str, np.ndarray]:
    """Per-sample results over all ``batches`` (padding removed): ``{name: [N]}``."""
    parts: list[dict[str, np.ndarray]] = []
    for batch in batches:
        out = eval_step(state, shard_batch(batch, mesh))
        parts.append({k: to_host(v) for k, v in out.items()})
    if not parts:
        raise ValueError("the evaluation split yielded no batches: is it empty? check the split file")
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = merged.pop("weight") > 0
    return {k: v[keep] for k, v in merged.items()}


def summarize(per_sample: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Means over samples, the corrupted input's, the gain, and means per A, f, R, SNR value.

    Keys: ``val_loss``, ``val_SSIM``, ``val_PSNR``, ``val_NRMSE``, ``input_SSIM``, ... ,
    ``gain_SSIM``, ..., and e.g. ``by_A/2/val_SSIM``, ``by_A/2/input_SSIM``.
    """
    out: dict[str, float] = {}
    for key, name in _SUMMARY_NAMES.items():
        out[name] = float(np.mean(per_sample[key]))
        if key != "loss":
            metric = name.split("_", 1)[1]
            out[f"input_{metric}"] = float(np.mean(per_sample[f"input_{key}"]))
            out[f"gain_{metric}"] = out[name] - out[f"input_{metric}"]
    combos = per_sample["combination"]
    if np.all(combos >= 0):
        table = sim.grid_table()
        for short, values in table.items():
            per_value = values[combos]
            for value in np.unique(per_value):
                sel = per_value == value
                label = f"by_{short}/{value:g}"
                for key in ("ssim", "psnr"):
                    metric = _SUMMARY_NAMES[key].split("_", 1)[1]
                    out[f"{label}/val_{metric}"] = float(np.mean(per_sample[key][sel]))
                    out[f"{label}/input_{metric}"] = float(np.mean(per_sample[f"input_{key}"][sel]))
    return out
