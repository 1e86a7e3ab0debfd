"""kmri-evaluate: tables, metrics against scikit-image on independently rebuilt images,
figures, and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from kmri_jax import sim
from kmri_jax.cli import evaluate as cli
from kmri_jax.data import PreprocessOptions, SliceStore, build_store
from kmri_jax.tasks import model_io
from once import once_per_run
from task_helpers import listing

COMBOS = (0, 40, 80)
METRICS = ("ssim", "psnr", "nrmse")


def _run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def store(phantom, tmp_path_factory) -> Path:
    """The 2-subject phantom prepared at the tiny model's size: sub-01 test, sub-02 val (once
    per test run, tests/once.py, like the fixtures below)."""

    def compute(folder):
        build_store(phantom, folder / "store", options=PreprocessOptions(ny=32, nx=48),
                    splits={"train": [], "val": ["sub-02"], "test": ["sub-01"]})
        return {"path": str(folder / "store")}

    return Path(once_per_run(tmp_path_factory, "eval-store", compute)["path"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny non-residual checkpoint with random weights and perturbed BatchNorm statistics
    (the shared fixture's residual model starts as the identity: output = input)."""

    def compute(workdir):
        from tiny_run import tiny_config
        from kmri_jax.train.state import create_state

        config = tiny_config()
        config.model.residual = False
        state, _ = create_state(7, model_config=config.model, tx=optax.identity())
        stats = jax.tree.map(lambda v: v + 0.05, state.batch_stats)
        model_io.save_model_checkpoint(workdir, config, state.params, stats)
        return {"path": str(workdir)}

    return Path(once_per_run(tmp_path_factory, "eval-trained", compute)["path"])


@pytest.fixture(scope="module")
def report(store, trained, tmp_path_factory):
    def compute(folder):
        out = folder / "report"
        rc = cli.main(["--checkpoint", str(trained), "--store", str(store), "--output", str(out),
                       "--combinations", ",".join(map(str, COMBOS)), "--batch-size", "8"])
        assert rc == 0
        return {"path": str(out)}

    return Path(once_per_run(tmp_path_factory, "eval-report", compute)["path"])


def test_tables_and_figures(report, store):
    n_slices = len(SliceStore(store).indices("test"))
    assert n_slices == 6
    assert listing(report) == sorted(["metrics_vs_params.png", "per_sample.csv",
                                      "per_subject.csv", "severity.png", "summary.csv",
                                      "summary.md"])
    rows = _rows(report / "per_sample.csv")
    metric_cols = [f"{k}_{m}" for k in ("input", "output", "oracle", "estimate") for m in METRICS]
    assert list(rows[0]) == ["subject", "volume", "slice", "combination", "A", "f", "R", "SNR",
                             "loss", *metric_cols, "input_disp_rmse", "estimate_disp_rmse"]
    assert len(rows) == n_slices * len(COMBOS)
    assert {r["subject"] for r in rows} == {"sub-01"}
    assert sorted({int(r["combination"]) for r in rows}) == list(COMBOS)
    by_combo = {int(r["combination"]): (r["A"], r["f"], r["R"], r["SNR"]) for r in rows}
    assert by_combo[0] == ("2", "12", "2", "15") and by_combo[80] == ("8", "18", "6", "25")

    subj = _rows(report / "per_subject.csv")
    assert len(subj) == len(COMBOS) and all(int(r["n"]) == n_slices for r in subj)
    combo40 = [r for r in rows if r["combination"] == "40"]
    row40 = next(r for r in subj if r["A"] == "5")
    np.testing.assert_allclose(float(row40["output_ssim"]),
                               np.mean([float(r["output_ssim"]) for r in combo40]), rtol=1e-5)

    summary = _rows(report / "summary.csv")
    assert len(summary) == (1 + 4 * len(COMBOS)) * len(METRICS)
    overall = {r["metric"]: r for r in summary if r["parameter"] == "all"}
    gains = [float(r["output_psnr"]) - float(r["input_psnr"]) for r in rows]
    np.testing.assert_allclose(float(overall["psnr"]["gain_mean"]), np.mean(gains), rtol=1e-5)
    np.testing.assert_allclose(float(overall["psnr"]["gain_sd"]), np.std(gains), rtol=1e-4)
    md = (report / "summary.md").read_text()
    assert "## By SNR" in md and "±" in md
    methods = md.split("## Methods")[1].split("##")[0]
    for name in ("corrupted input", "oracle (true motion undone)", "estimate_motion + undo",
                 "network"):
        assert f"| {name} |" in methods  # one row per method
    for png in ("metrics_vs_params.png", "severity.png"):
        data = (report / png).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 10_000


def _skimage(pred, ref, rows, cols):
    scale = ref[:rows, :cols].max()
    p, r = pred[:rows, :cols] / scale, ref[:rows, :cols] / scale
    return {"ssim": structural_similarity(r, p, data_range=1),
            "psnr": peak_signal_noise_ratio(r, p, data_range=1),
            "nrmse": normalized_root_mse(r, p)}


def _mag(k):
    return np.abs(np.fft.ifft2(np.fft.ifftshift(k)))


def test_metrics_match_skimage_on_rebuilt_images(report, store, trained):
    """Rebuild two samples from the documented key and the model, independently of the
    evaluation code: fold_in(fold_in(fold_in(key(eval.seed), volume), slice), combination)."""
    model = model_io.load_model(trained)
    predict = model.predictor()
    s = SliceStore(store)
    rows = _rows(report / "per_sample.csv")
    for row in (rows[1], rows[-1]):
        vol, sl, combo = int(row["volume"]), int(row["slice"]), int(row["combination"])
        i = int(np.flatnonzero((s.index["volume"] == vol) & (s.index["slice"] == sl))[0])
        rec = s.index[i]
        image = np.asarray(s.images[i])
        key = jax.random.key(int(model.config.eval.seed))
        for v in (vol, sl, combo):
            key = jax.random.fold_in(key, v)
        params = sim.CorruptionParams(float(row["A"]), float(row["f"]), float(row["R"]),
                                      float(row["SNR"]), tr=float(rec["tr"]), te=float(rec["te"]))
        c = sim.corrupt(key, image, params, method=model.config.corruption.method)
        k_bad, k_clean = np.asarray(c.kspace), np.asarray(c.clean)
        scale = np.abs(k_bad).max() + 1e-8  # model.input_scale "corrupted": what exists
        y = np.asarray(predict(k_bad[None], np.asarray(c.mask)[None],
                               np.float32([scale])))[0] * scale
        truth, rr, cc = _mag(k_clean), int(rec["valid_rows"]), int(rec["valid_cols"])
        want_in = _skimage(_mag(k_bad), truth, rr, cc)
        want_out = _skimage(_mag(y[0] + 1j * y[1]), truth, rr, cc)
        u = np.fft.fftshift(np.fft.fftfreq(k_bad.shape[1]))  # the true motion undone, numpy
        undone = k_bad * np.exp(2j * np.pi * np.asarray(c.displacement)[:, None] * u)
        want_oracle = _skimage(_mag(undone), truth, rr, cc)
        for m in METRICS:
            np.testing.assert_allclose(float(row[f"oracle_{m}"]), want_oracle[m], rtol=2e-3,
                                       atol=2e-4)
            np.testing.assert_allclose(float(row[f"input_{m}"]), want_in[m], rtol=2e-3, atol=2e-4)
            np.testing.assert_allclose(float(row[f"output_{m}"]), want_out[m], rtol=2e-3,
                                       atol=2e-4)
        assert abs(want_out["psnr"] - want_in["psnr"]) > 0.1  # the network changes the image


@pytest.mark.parametrize("case", ["missing_ckpt", "empty_split", "bad_combos", "wrong_size"])
def test_bad_input_one_message_no_output(case, tmp_path, store, checkpoint, phantom, capsys):
    out = tmp_path / "out"
    args = ["--checkpoint", checkpoint, "--store", store, "--output", out]
    expect = {"missing_ckpt": "does not exist", "empty_split": "no slices",
              "bad_combos": "--combinations", "wrong_size": "trained on 32x48"}[case]
    if case == "missing_ckpt":
        args[1] = tmp_path / "nope"
    elif case == "empty_split":
        args += ["--split", "train"]
    elif case == "bad_combos":
        args += ["--combinations", "3,99"]
    else:
        other = tmp_path / "store16"
        build_store(phantom, other, options=PreprocessOptions(ny=16, nx=48),
                    splits={"train": [], "val": [], "test": ["sub-01", "sub-02"]})
        args[3] = other
    rc, cap = _run(args, capsys)
    assert rc == 1
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kmri-evaluate: error:") and expect in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_network_that_undoes_the_search_reuses_the_estimate_rows(store, tmp_path,
                                                                    monkeypatch):
    """estimate_unet with the estimate row reuses its displacements (the search is traced
    for the estimate row only): its per-sample metrics equal those of a report without the
    estimate row, where the network searches itself."""
    from kmri_jax import correct
    from kmri_jax.tasks.evaluate import evaluate
    from kmri_jax.train.state import create_state
    from tiny_run import tiny_config

    config = tiny_config()
    config.model.kind = "estimate_unet"
    with config.unlocked():  # a cheap search: the search itself is tested in tests/correct
        config.correct.n_outer, config.correct.n_inner = 2, 5
    state, _ = create_state(5, model_config=config.model, tx=optax.identity())
    params = jax.tree.map(lambda v: v + 0.01, state.params)  # not the identity
    model_io.save_model_checkpoint(tmp_path / "run", config, params, state.batch_stats)
    common = dict(store=store, split="val", combinations="0,40,80", batch_size=8)
    traced, search = [], correct.estimate_motion

    def counted(*args, **kwargs):
        traced.append(1)
        return search(*args, **kwargs)

    monkeypatch.setattr(correct, "estimate_motion", counted)
    both = evaluate(tmp_path / "run", tmp_path / "both", methods="input,estimate,model",
                    **common).per_sample
    assert len(traced) == 1  # the estimate row's baseline step; the network reused it
    alone = evaluate(tmp_path / "run", tmp_path / "alone", methods="input,model",
                     **common).per_sample
    assert len(traced) == 3  # the network's evaluation step and its figure's predict
    for metric in METRICS:
        np.testing.assert_allclose(both[f"output_{metric}"], alone[f"output_{metric}"],
                                   rtol=1e-5)
        assert not np.allclose(both[f"output_{metric}"], both[f"input_{metric}"])
