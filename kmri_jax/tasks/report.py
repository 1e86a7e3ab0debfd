"""The tables of ``kmri-evaluate``: every method side by side on the same fixed corruption.

A table is a dict of ``[N]`` numpy columns, one row per sample (slice x combination): the
sample's identity (``subject``, ``volume``, ``slice``, ``combination``, ``A``, ``f``, ``R``,
``SNR``), the network's ``loss``, and ``<method>_<metric>`` for each method evaluated and each
of ``ssim``, ``psnr``, ``nrmse``; the network's columns are called ``output_*`` (as the seed's
tables did), the others ``input_*`` (the corrupted input), ``oracle_*`` (the true motion undone,
zero-filled) and ``estimate_*`` (the training-free motion estimate undone, zero-filled).
Methods that estimate motion have ``<method>_disp_rmse`` (px, over the acquired lines, after
the best constant); ``input_disp_rmse`` is that of estimating no motion.

Statistics are mean ± sd over samples (numpy's population sd); a gain is per sample, method
minus input (for NRMSE, negative is better); the oracle share of a method is its mean SSIM gain
over the oracle's mean SSIM gain.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from kmri_jax.tasks.errors import TaskError

__all__ = ["METHOD_COLUMNS", "METHOD_NAMES", "METRICS", "PARAMS", "groups", "metric_stats",
           "per_subject_csv", "staged", "summary_csv", "summary_md", "table_csv"]

METRICS = ("ssim", "psnr", "nrmse")
PARAMS = ("A", "f", "R", "SNR")
MOTION_PARAMS = ("A_pe", "rot")  # in a table only when the run's grid varies them


def params_in(t: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The grid parameters of a table: A, f, R, SNR, and A_pe / rot when present."""
    return (*PARAMS, *(p for p in MOTION_PARAMS if p in t))
METHOD_COLUMNS = {"input": "input", "oracle": "oracle", "estimate": "estimate",
                  "motion": "motion", "model": "output"}
"""Method name -> the prefix of its columns."""
METHOD_NAMES = {"input": "corrupted input", "oracle": "oracle (true motion undone)",
                "estimate": "estimate_motion + undo",
                "motion": "network's motion estimate + undo", "model": "network"}
_DIGITS = {"ssim": 4, "psnr": 2, "nrmse": 4}


def _fmt(v) -> str:
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.7g}"


def table_csv(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(v) for v in r])
    return buf.getvalue()


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _prefixes(t: Mapping[str, np.ndarray]) -> list[str]:
    """Column prefixes of the methods present, input first."""
    return [p for p in METHOD_COLUMNS.values() if f"{p}_ssim" in t]


def metric_stats(t: Mapping[str, np.ndarray], sel: np.ndarray) -> dict[str, dict[str, float]]:
    """Per metric: ``<prefix>_mean``/``_sd`` of every method present, and for each method but
    the input ``<prefix>_gain_mean``/``_sd`` (the network's also as plain ``gain_mean``/``_sd``)."""
    out: dict[str, dict[str, float]] = {}
    for m in METRICS:
        s: dict[str, float] = {}
        base = t[f"input_{m}"][sel]
        for p in _prefixes(t):
            values = t[f"{p}_{m}"][sel]
            s.update(zip((f"{p}_mean", f"{p}_sd"), _stats(values)))
            if p != "input":
                s.update(zip((f"{p}_gain_mean", f"{p}_gain_sd"), _stats(values - base)))
        if "output_gain_mean" in s:
            s["gain_mean"], s["gain_sd"] = s["output_gain_mean"], s["output_gain_sd"]
        out[m] = s
    return out


def groups(t: Mapping[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """(parameter, value, selection): overall first, then each value of A, f, R, SNR (A_pe,
    rot)."""
    n = len(t["combination"])
    found = [("all", "", np.ones(n, bool))]
    for p in params_in(t):
        for v in np.unique(t[p]):
            found.append((p, f"{v:g}", t[p] == v))
    return found


def summary_csv(t: Mapping[str, np.ndarray]) -> str:
    """One row per (parameter, value, metric); the statistics of :func:`metric_stats`."""
    first = metric_stats(t, np.ones(len(t["combination"]), bool))["ssim"]
    stat_cols = [c for c in first if c not in ("gain_mean", "gain_sd")]
    if "gain_mean" in first:
        stat_cols += ["gain_mean", "gain_sd"]
    cols = ("parameter", "value", "n", "metric", *stat_cols)
    rows = []
    for p, v, sel in groups(t):
        for m, s in metric_stats(t, sel).items():
            rows.append((p, v, int(sel.sum()), m, *(s[c] for c in stat_cols)))
    return table_csv(cols, rows)


def per_subject_csv(t: Mapping[str, np.ndarray]) -> str:
    keys = list(zip(t["subject"], *(t[p] for p in params_in(t))))
    order: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    value_cols = (["loss"] if "loss" in t else []) + [
        f"{p}_{m}" for p in _prefixes(t) for m in METRICS]
    rows = []
    for k in sorted(order, key=lambda k: (str(k[0]), *k[1:])):
        idx = np.asarray(order[k])
        rows.append((*k, len(idx), *(float(np.mean(t[c][idx])) for c in value_cols)))
    return table_csv(("subject", *params_in(t), "n", *value_cols), rows)


def _pm(mean: float, sd: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _oracle_share(s: Mapping[str, float], prefix: str) -> str:
    if prefix in ("input", "oracle") or "oracle_gain_mean" not in s:
        return ""
    denominator = s["oracle_gain_mean"]
    return f"{100 * s[f'{prefix}_gain_mean'] / denominator:.0f}%" if denominator > 0 else "n/a"


def _disp(t: Mapping[str, np.ndarray], prefix: str, sel: np.ndarray) -> str:
    column = f"{prefix}_disp_rmse"
    return _pm(*_stats(t[column][sel]), 2) if column in t else ""


def summary_md(t: Mapping[str, np.ndarray], *, header: Sequence[str]) -> str:
    """The report: one table with one row per method, then the SSIM of every method per value
    of each parameter."""
    all_rows = np.ones(len(t["combination"]), bool)
    overall = metric_stats(t, all_rows)
    prefixes = _prefixes(t)
    names = {v: METHOD_NAMES[k] for k, v in METHOD_COLUMNS.items()}
    lines = ["# kmri-evaluate summary", "", *(f"- {h}" for h in header), "",
             "Mean ± sd over samples (slice x combination), every method on the same fixed "
             "corruption; gain = method - corrupted input per sample (for NRMSE, negative is "
             "better); oracle share = mean SSIM gain / the oracle's; displacement error = RMS "
             "over the acquired lines after the best constant (px; for the input: estimating "
             "no motion).", "", "## Methods", "",
             "| method | SSIM | PSNR (dB) | NRMSE | SSIM gain | oracle share | displacement "
             "error (px) |", "|---|---|---|---|---|---|---|"]
    for p in prefixes:
        cells = [_pm(overall[m][f"{p}_mean"], overall[m][f"{p}_sd"], _DIGITS[m]) for m in METRICS]
        gain = "" if p == "input" else _pm(overall["ssim"][f"{p}_gain_mean"],
                                           overall["ssim"][f"{p}_gain_sd"], 4)
        lines.append(f"| {names[p]} | {' | '.join(cells)} | {gain} | "
                     f"{_oracle_share(overall['ssim'], p)} | {_disp(t, p, all_rows)} |")
    if "loss" in t:
        lines += ["", f"Network loss: {_pm(*_stats(t['loss']), 5)}."]
    focus = "output" if "output" in prefixes else prefixes[-1]
    for param in params_in(t):
        lines += ["", f"## By {param} (SSIM)", "",
                  f"| {param} | n | " + " | ".join(names[p] for p in prefixes)
                  + f" | oracle share ({names[focus]}) | displacement error ({names[focus]}) |",
                  "|---" * (4 + len(prefixes)) + "|"]
        for _, v, sel in (g for g in groups(t) if g[0] == param):
            s = metric_stats(t, sel)["ssim"]
            cells = [_pm(s[f"{p}_mean"], s[f"{p}_sd"], 4) for p in prefixes]
            lines.append(f"| {v} | {int(sel.sum())} | " + " | ".join(cells)
                         + f" | {_oracle_share(s, focus)} | {_disp(t, focus, sel)} |")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def staged(output: Path) -> Iterator[Path]:
    """A staging folder next to ``output``; on success its files replace those in ``output``
    (created if needed), on error it is removed and ``output`` is untouched."""
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        yield stage
        if not output.exists():
            os.replace(stage, output)
            os.chmod(output, 0o777 & ~_umask())
            return
        if not output.is_dir():
            raise TaskError(f"--output {os.fspath(output)!r} exists and is not a folder")
        for f in sorted(stage.iterdir()):
            os.chmod(f, 0o666 & ~_umask())
            os.replace(f, output / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
