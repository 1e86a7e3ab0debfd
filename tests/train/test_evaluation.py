"""Evaluation summaries: every method side by side, gains, per-parameter means, displacement
errors, against numpy means of the same per-sample rows."""

from __future__ import annotations

import numpy as np
import pytest

from kmri_jax.train.evaluation import merge, summarize
from kmri_jax.train.step import displacement_error


def _rows(n=27):
    rng = np.random.default_rng(0)
    combos = rng.integers(0, 81, n).astype(np.int32)
    model = {"combination": combos, "loss": rng.random(n), "ssim": rng.random(n),
             "psnr": 20 + rng.random(n), "nrmse": rng.random(n), "disp_rmse": rng.random(n)}
    base = {"combination": combos}
    for m in ("input", "oracle", "estimate"):
        base.update({f"{m}_ssim": rng.random(n), f"{m}_psnr": 15 + rng.random(n),
                     f"{m}_nrmse": rng.random(n)})
    base["estimate_disp_rmse"] = rng.random(n)
    return model, base


def test_summary_has_every_method_and_the_breakdown():
    model, base = _rows()
    s = summarize(merge(base, model))
    assert s["val_SSIM"] == pytest.approx(model["ssim"].mean())
    for m in ("input", "oracle", "estimate"):
        assert s[f"{m}_PSNR"] == pytest.approx(base[f"{m}_psnr"].mean())
    assert s["gain_SSIM"] == pytest.approx(model["ssim"].mean() - base["input_ssim"].mean())
    assert s["estimate_disp_rmse"] == pytest.approx(base["estimate_disp_rmse"].mean())
    amplitude = np.array([2.0, 5.0, 8.0])[model["combination"] // 27]
    sel = amplitude == 5.0
    assert s["by_A/5/oracle_SSIM"] == pytest.approx(base["oracle_ssim"][sel].mean())
    assert s["by_A/5/val_disp_rmse"] == pytest.approx(model["disp_rmse"][sel].mean())
    with pytest.raises(ValueError, match="merged"):
        merge(base, {**model, "combination": model["combination"][::-1]})


def test_displacement_error_is_the_rms_after_the_best_constant():
    rng = np.random.default_rng(1)
    est, true = rng.normal(size=(3, 20)), rng.normal(size=(3, 20))
    mask = rng.random((3, 20)) > 0.4
    got = np.asarray(displacement_error(est, true + 7.0, mask))  # the constant is free
    for j in range(3):
        e = (est[j] - true[j])[mask[j]]
        assert got[j] == pytest.approx(np.std(e), rel=1e-5)
