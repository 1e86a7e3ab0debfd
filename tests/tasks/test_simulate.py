"""kmri-simulate: outputs against numpy / the simulator called directly, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import nibabel as nib
import numpy as np
import pytest

from kmri_jax import sim
from kmri_jax.cli import simulate as cli

from task_helpers import listing, write_nifti


def _run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr()


def test_single_volume_outputs(tmp_path, volume_file, capsys):
    out = tmp_path / "out" / "corrupted.nii.gz"
    preview = tmp_path / "out" / "preview.png"
    rc, cap = _run(["--input", volume_file, "--output", out, "-A", 6, "-f", 14, "-R", 3,
                    "--snr", 22, "--seed", 7, "--batch-size", 4, "--save-kspace", "--save-trace",
                    "--preview", preview], capsys)
    assert rc == 0, cap.err
    src = nib.load(volume_file)
    got = nib.load(out)
    np.testing.assert_array_equal(got.affine, src.affine)
    assert got.shape == src.shape
    assert got.get_data_dtype() == src.get_data_dtype()  # int16 kept

    z = np.load(tmp_path / "out" / "corrupted_kspace.npz")
    assert z["kspace"].dtype == np.complex64 and z["clean"].dtype == np.complex64
    assert z["kspace"].shape == (6, 32, 48) and z["mask"].shape == (6, 32)
    clean_slices = src.get_fdata(dtype=np.float32)
    # Clean k-space: numpy's fftshift(fft2(x)) of each sagittal slice.
    np.testing.assert_allclose(z["clean"], np.fft.fftshift(np.fft.fft2(clean_slices),
                                                           axes=(-2, -1)),
                               rtol=1e-4, atol=1e-3 * np.abs(z["clean"]).max())
    # Corrupted k-space: sim.corrupt with the documented per-slice key.
    sidecar = json.loads(volume_file.with_name("sub-01_T2w.json").read_text())
    params = sim.CorruptionParams(6.0, 14.0, 3.0, 22.0, tr=sidecar["RepetitionTime"],
                                  te=sidecar["EchoTime"])
    for s in (0, 5):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 0), s)
        ref = sim.corrupt(key, clean_slices[s], params)
        np.testing.assert_allclose(z["kspace"][s], np.asarray(ref.kspace), rtol=1e-4,
                                   atol=1e-4 * np.abs(ref.clean).max())
        np.testing.assert_array_equal(z["mask"][s], np.asarray(ref.mask))
    # The NIfTI holds |ifft2(ifftshift(K_c))| (within int16 quantisation).
    mag = np.abs(np.fft.ifft2(np.fft.ifftshift(z["kspace"], axes=(-2, -1))))
    vol = got.get_fdata()
    np.testing.assert_allclose(vol, mag, atol=2e-4 * mag.max() + 1e-6)
    np.testing.assert_allclose(z["affine"], src.affine)
    lines = (tmp_path / "out" / "corrupted_trace.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["slice", "line", "time_s"] and len(lines) == 1 + 6 * 32
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and preview.stat().st_size > 10_000


def test_grid_writes_81_volumes(tmp_path, volume_file, capsys):
    out = tmp_path / "grid"
    rc, cap = _run(["--input", volume_file, "--output", out, "--grid", "--method", "sinusoidal",
                    "--dtype", "float32", "--seed", 1, "--tr", 0.8, "--te", 0.02], capsys)
    assert rc == 0, cap.err
    files = sorted(out.glob("*.nii.gz"))
    assert len(files) == 81
    name = "sub-01_T2w_c80_A8_f18_R6_SNR25.nii.gz"
    got = nib.load(out / name)
    assert got.get_data_dtype() == np.float32
    # Combination 80 of slice 2: key fold_in(fold_in(fold_in(key(1), 0), 2), 80).
    clean = nib.load(volume_file).get_fdata(dtype=np.float32)[2]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.key(1), 0), 2), 80)
    ref = sim.corrupt(key, clean, sim.CorruptionParams(8.0, 18.0, 6.0, 25.0, tr=0.8, te=0.02),
                      method="sinusoidal")
    mag = np.abs(np.fft.ifft2(np.fft.ifftshift(np.asarray(ref.kspace))))
    np.testing.assert_allclose(got.get_fdata()[2], mag, atol=1e-4 * mag.max())


@pytest.mark.parametrize("case", ["4d", "amplitude", "rate", "missing", "te", "suffix"])
def test_bad_input_one_message_no_output(tmp_path, volume_file, case, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = ["--input", volume_file, "--output", out_dir / "x.nii.gz", "--save-kspace",
            "--preview", out_dir / "p.png"]
    expect = {"4d": "4-D", "amplitude": "--amplitude", "rate": "--rate", "missing":
              "does not exist", "te": "TE", "suffix": ".nii"}[case]
    if case == "4d":
        argv[1] = write_nifti(tmp_path / "v4.nii.gz", np.ones((6, 32, 48, 2)))
    elif case == "amplitude":
        argv += ["-A", "-1"]
    elif case == "rate":
        argv += ["-f", "0"]
    elif case == "missing":
        argv[1] = tmp_path / "nope.nii.gz"
    elif case == "te":
        argv += ["--tr", "0.5", "--te", "0.6"]
    elif case == "suffix":
        argv[3] = out_dir / "x.png"
    rc, cap = _run(argv, capsys)
    assert rc == 1
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kmri-simulate: error:") and expect in err[0], err
    assert listing(out_dir) == []


def test_second_run_compiles_nothing_new(tmp_path, volume_file):
    """The commands share training's persistent XLA cache (under ~/.cache by default)."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(HOME=str(home), JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    cache = home / ".cache" / "kmri_jax" / "xla"
    entries = []
    for run in ("a", "b"):
        done = subprocess.run(
            [sys.executable, "-m", "kmri_jax.cli.simulate", "--input", str(volume_file),
             "--output", str(tmp_path / f"{run}.nii.gz"), "-A", "4", "-f", "15", "-R", "2",
             "--snr", "20"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        entries.append(sorted(p.name for p in cache.iterdir()))
    assert entries[0] and entries[1] == entries[0]
    np.testing.assert_array_equal(nib.load(tmp_path / "b.nii.gz").get_fdata(),
                                  nib.load(tmp_path / "a.nii.gz").get_fdata())


def test_realism_flags_reach_the_simulator(tmp_path, volume_file, capsys):
    out = tmp_path / "out" / "tse.nii.gz"
    flags = ["--ordering", "segmented", "--etl", 4, "--echo-spacing", 0.01,
             "--time-acquired-only", "--amplitude-pe", 2, "--rotation", 3,
             "--motion-states", 4, "--weight-reference", 0.3, "--weight-decay-mm", 20]
    rc, cap = _run(["--input", volume_file, "--output", out, "-A", 6, "-f", 14, "-R", 3,
                    "--snr", 22, "--seed", 7, "--save-kspace", "--save-trace",
                    "--preview", tmp_path / "out" / "p.png", *flags], capsys)
    assert rc == 0, cap.err
    z = np.load(tmp_path / "out" / "tse_kspace.npz")
    sidecar = json.loads(volume_file.with_name("sub-01_T2w.json").read_text())
    params = sim.CorruptionParams(6.0, 14.0, 3.0, 22.0, tr=sidecar["RepetitionTime"],
                                  te=sidecar["EchoTime"], amplitude_pe_px=2.0, rotation_deg=3.0)
    slices = nib.load(volume_file).get_fdata(dtype=np.float32)
    w = sim.breathing_weight_map(slices.shape[1:], reference_px=0.3 * (slices.shape[2] - 1),
                                 decay_mm=20.0)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 0), 2)
    ref = sim.corrupt(key, slices[2], params, w, ordering="segmented", echo_train_length=4,
                      echo_spacing=0.01, time_acquired_only=True, motion_states=4)
    np.testing.assert_allclose(z["kspace"][2], np.asarray(ref.kspace), rtol=1e-4,
                               atol=1e-4 * np.abs(ref.clean).max())
    np.testing.assert_allclose(z["times"][2], np.asarray(ref.times), atol=1e-5)
    np.testing.assert_allclose(z["rotation_deg"][2], np.asarray(ref.rotation_deg), atol=1e-5)
    rows = (tmp_path / "out" / "tse_trace.csv").read_text().splitlines()
    assert rows[0].endswith("displacement_pe_px,rotation_deg,off_resonance_hz")
    # without motion states a rotation is one clear error and nothing is written
    bad = tmp_path / "bad" / "x.nii.gz"
    rc, cap = _run(["--input", volume_file, "--output", bad, "--rotation", 3], capsys)
    assert rc == 1 and "--motion-states" in cap.err and not bad.parent.exists()


def test_b0_and_coil_flags_reach_the_simulator(tmp_path, volume_file, capsys):
    """--b0/--field-map/--bandwidth/--coils: the coil k-space equals sim.corrupt called
    directly; the file's single-coil view and the NIfTI (RSS) equal numpy combinations."""
    out = tmp_path / "out" / "coils.nii.gz"
    flags = ["--b0", 8, "--field-map", "lungs", "--field-lungs", 0.4, 0.7, "--bandwidth", 150,
             "--coils", 4, "--coil-correlation", 0.2, "--motion-states", 4]
    rc, cap = _run(["--input", volume_file, "--output", out, "-A", 3, "-f", 14, "-R", 2,
                    "--snr", 25, "--seed", 3, "--save-kspace", "--save-trace", "--dtype",
                    "float32", "--preview", tmp_path / "out" / "p.png", *flags], capsys)
    assert rc == 0, cap.err
    z = np.load(tmp_path / "out" / "coils_kspace.npz")
    sidecar = json.loads(volume_file.with_name("sub-01_T2w.json").read_text())
    params = sim.CorruptionParams(3.0, 14.0, 2.0, 25.0, tr=sidecar["RepetitionTime"],
                                  te=sidecar["EchoTime"], b0_hz=8.0)
    slices = nib.load(volume_file).get_fdata(dtype=np.float32)
    shape = slices.shape[1:]
    field = sim.breathing_field_map(shape, lung_px=(0.4 * (shape[1] - 1), 0.7 * (shape[1] - 1)))
    maps = sim.coil_maps(shape, n_coils=4)
    cov = 0.8 * np.eye(4) + 0.2 * np.ones((4, 4))
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 0), 2)
    ref = sim.corrupt(key, slices[2], params, None, field, maps, cov.astype(np.complex64),
                      motion_states=4, readout_bandwidth_hz_per_px=150.0)
    scale = np.abs(ref.clean).max()
    assert z["coil_kspace"].shape == (slices.shape[0], 4, *shape)
    np.testing.assert_allclose(z["coil_kspace"][2], np.asarray(ref.kspace), rtol=1e-4,
                               atol=1e-4 * scale)
    np.testing.assert_allclose(z["coil_maps"], maps, atol=1e-6)
    np.testing.assert_allclose(z["noise_covariance"], cov, atol=1e-6)
    np.testing.assert_allclose(z["field_map"], field, atol=1e-6)
    np.testing.assert_allclose(z["off_resonance_hz"][2], np.asarray(ref.off_resonance_hz),
                               atol=1e-4)
    assert float(z["b0_hz"]) == 8.0 and float(z["readout_bandwidth_hz_per_px"]) == 150.0
    # numpy: coil images, adjoint SENSE sum_c conj(S_c) x_c, root-sum-of-squares.
    coil_images = np.fft.ifft2(np.fft.ifftshift(z["coil_kspace"], axes=(-2, -1)))
    sense = np.sum(np.conj(maps)[None] * coil_images, axis=1)
    np.testing.assert_allclose(z["kspace"], np.fft.fftshift(np.fft.fft2(sense), axes=(-2, -1)),
                               atol=1e-4 * scale)
    rss = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1))
    np.testing.assert_allclose(nib.load(out).get_fdata(), rss, rtol=1e-4,
                               atol=1e-5 * rss.max())
    # without motion states, coils are one clear error naming the flag, and nothing is written
    bad = tmp_path / "bad" / "x.nii.gz"
    rc, cap = _run(["--input", volume_file, "--output", bad, "--coils", 4], capsys)
    assert rc == 1 and "--motion-states" in cap.err and not bad.parent.exists()
