"""kmri-infer: output volume, metrics against scikit-image, k-space input, and bad input."""

from __future__ import annotations

import csv
import json
import shutil

import jax
import nibabel as nib
import numpy as np
import pytest
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from kmri_jax import sim
from kmri_jax.cli import infer as cli
from kmri_jax.cli import simulate as sim_cli
from task_helpers import listing, write_nifti


def _run(argv, capsys, main=cli.main):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr()


def _skimage(pred, ref):
    scale = ref.max()
    p, r = pred / scale, ref / scale
    return {"ssim": structural_similarity(r, p, data_range=1),
            "psnr": peak_signal_noise_ratio(r, p, data_range=1),
            "nrmse": normalized_root_mse(r, p)}


def test_simulated_input_metrics_match_skimage(tmp_path, checkpoint, volume_file, capsys):
    out, fig, table = tmp_path / "fixed.nii.gz", tmp_path / "fig.png", tmp_path / "m.csv"
    rc, cap = _run(["--checkpoint", checkpoint, "--input", volume_file, "--output", out,
                    "-A", 8, "--seed", 3, "--figure", fig, "--metrics-csv", table,
                    "--dtype", "float32"], capsys)
    assert rc == 0, cap.err
    assert "SSIM" in cap.out
    src, got = nib.load(volume_file), nib.load(out)
    np.testing.assert_array_equal(got.affine, src.affine)
    assert got.shape == src.shape and got.get_data_dtype() == np.float32
    assert fig.read_bytes()[:4] == b"\x89PNG" and fig.stat().st_size > 10_000

    clean = src.get_fdata(dtype=np.float32)
    corrected = got.get_fdata(dtype=np.float32)
    sidecar = json.loads(volume_file.with_name("sub-01_T2w.json").read_text())
    params = sim.CorruptionParams(8.0, 15.0, 4.0, 20.0, tr=sidecar["RepetitionTime"],
                                  te=sidecar["EchoTime"])
    rows = list(csv.DictReader(table.open()))
    assert [int(r["slice"]) for r in rows] == list(range(6))
    for s in (1, 3):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 0), s)
        k_c = np.asarray(sim.corrupt(key, clean[s], params).kspace)
        corrupted = np.abs(np.fft.ifft2(np.fft.ifftshift(k_c)))
        want_in, want_out = _skimage(corrupted, clean[s]), _skimage(corrected[s], clean[s])
        for k in ("ssim", "psnr", "nrmse"):
            np.testing.assert_allclose(float(rows[s][f"input_{k}"]), want_in[k], rtol=2e-3,
                                       atol=2e-4)
            np.testing.assert_allclose(float(rows[s][f"output_{k}"]), want_out[k], rtol=2e-3,
                                       atol=2e-4)


def test_from_saved_kspace(tmp_path, checkpoint, volume_file, capsys):
    corrupted = tmp_path / "c.nii.gz"
    rc, cap = _run(["--input", volume_file, "--output", corrupted, "--save-kspace"], capsys,
                   main=sim_cli.main)
    assert rc == 0, cap.err
    out, fig = tmp_path / "fixed.nii", tmp_path / "fig.png"
    rc, cap = _run(["--checkpoint", checkpoint / "checkpoints" / "2", "--kspace",
                    tmp_path / "c_kspace.npz", "--output", out, "--figure", fig], capsys)
    assert rc == 0, cap.err
    src, got = nib.load(volume_file), nib.load(out)
    np.testing.assert_array_equal(got.affine, src.affine)
    assert got.shape == src.shape and got.get_data_dtype() == src.get_data_dtype()
    assert fig.stat().st_size > 10_000


@pytest.mark.parametrize("case", ["missing_ckpt", "not_ckpt", "incompatible", "size", "4d",
                                  "amplitude", "both"])
def test_bad_input_one_message_no_output(tmp_path, checkpoint, volume_file, case, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ckpt, vol = checkpoint, volume_file
    extra = []
    if case == "missing_ckpt":
        ckpt, expect = tmp_path / "nothing", "does not exist"
    elif case == "not_ckpt":
        ckpt, expect = tmp_path, "no kmri_jax checkpoint"
    elif case == "incompatible":  # the stored config says base_channels 8, the state has 4
        ckpt = tmp_path / "run"
        shutil.copytree(checkpoint, ckpt)
        meta_file = ckpt / "checkpoints" / "2" / "meta" / "metadata"
        meta = json.loads(meta_file.read_text())
        meta["config"]["model"]["base_channels"] = 8
        meta_file.write_text(json.dumps(meta))
        expect = "does not match"
    elif case == "size":
        vol = write_nifti(tmp_path / "v.nii.gz", np.random.default_rng(0).random((6, 40, 48)))
        expect = "--fit pad"
    elif case == "4d":
        vol = write_nifti(tmp_path / "v.nii.gz", np.ones((6, 32, 48, 3)))
        expect = "4-D"
    elif case == "amplitude":
        extra, expect = ["-A", "500"], "--amplitude"
    else:
        extra, expect = ["--kspace", tmp_path / "k.npz"], "not allowed with argument"
    rc, cap = _run(["--checkpoint", ckpt, "--input", vol, "--output", out_dir / "o.nii.gz",
                    "--figure", out_dir / "f.png", "--metrics-csv", out_dir / "m.csv", *extra],
                   capsys) if case != "both" else (None, None)
    if case == "both":
        with pytest.raises(SystemExit) as e:
            cli.main([str(a) for a in ["--checkpoint", ckpt, "--input", vol, "--output",
                                        out_dir / "o.nii.gz", *extra]])
        assert e.value.code == 2
        assert expect in capsys.readouterr().err
    else:
        assert rc == 1
        err = cap.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kmri-infer: error:") and expect in err[0], err
    assert listing(out_dir) == []


def test_other_size_padded_with_warning(tmp_path, checkpoint, caplog, capsys):
    data = np.random.default_rng(1).random((3, 30, 52)).astype(np.float32)
    vol = write_nifti(tmp_path / "v.nii.gz", data)
    out = tmp_path / "o.nii.gz"
    rc, cap = _run(["--checkpoint", checkpoint, "--input", vol, "--output", out, "--fit", "pad"],
                   capsys)
    assert rc == 0, cap.err
    assert "training size is 32x48" in caplog.text
    got = nib.load(out).get_fdata()
    assert got.shape == data.shape
    # Columns cropped away (52 -> 48, centred: 2 on each side) are zero.
    assert np.all(got[:, :, :2] == 0) and np.all(got[:, :, -2:] == 0)
