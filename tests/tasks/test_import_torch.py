"""tools/import_torch_unet.py: a PyTorch model of the seed's architecture (written here) with
random weights and BatchNorm statistics -> checkpoint -> the same outputs in eval mode; bad
files give one clear message and write nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch_reference import SeedUNet  # noqa: E402  (the seed architecture, tools/)

from kmri_jax.tasks import model_io  # noqa: E402

TOOL = Path(__file__).resolve().parents[2] / "tools" / "import_torch_unet.py"
BASE = 4


def _tool():
    spec = importlib.util.spec_from_file_location("import_torch_unet", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seed_model():
    torch.manual_seed(0)
    model = SeedUNet(BASE)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(100)
    return model.eval()


def test_converted_checkpoint_matches_pytorch(tmp_path, seed_model, capsys):
    pt = tmp_path / "unet_best.pt"
    torch.save(seed_model.state_dict(), pt)
    out = tmp_path / "seed_weights"
    assert _tool().main([str(pt), "--output", str(out), "--ny", "16", "--nx", "24"]) == 0
    assert "wrote" in capsys.readouterr().out

    loaded = model_io.load_model(out)
    assert loaded.step == 0 and loaded.image_shape == (16, 24)
    assert loaded.config.model.base_channels == BASE and not loaded.config.model.residual
    x = np.random.default_rng(0).normal(size=(3, 2, 16, 24)).astype(np.float32)
    with torch.no_grad():
        want = seed_model(torch.from_numpy(x)).numpy()
    kspace, mask, scale = x[:, 0] + 1j * x[:, 1], np.ones((3, 16), bool), np.ones(3, np.float32)
    got = np.asarray(loaded.predictor()(kspace.astype(np.complex64), mask, scale))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def _bad_file(case: str, tmp_path: Path, model: nn.Module) -> tuple[Path, str]:
    path = tmp_path / "bad.pt"
    sd = model.state_dict()
    if case == "missing":
        return tmp_path / "nope.pt", "does not exist"
    if case == "not_torch":
        path.write_bytes(b"this is not a torch file")
        return path, "not a PyTorch file"
    if case == "not_state_dict":
        torch.save([torch.zeros(3)], path)
        return path, "not a state_dict"
    if case == "missing_key":
        sd = {k: v for k, v in sd.items() if not k.startswith("up2.")}
        torch.save(sd, path)
        return path, "missing keys ['up2.bias', 'up2.weight']"
    sd = dict(sd)  # shape
    sd["dec2.block.3.weight"] = torch.zeros(8, 8, 5, 5)
    torch.save(sd, path)
    return path, "dec2.block.3.weight: (8, 8, 5, 5) (expected (8, 8, 3, 3))"


@pytest.mark.parametrize("case", ["missing", "not_torch", "not_state_dict", "missing_key",
                                  "shape"])
def test_bad_file_one_message_nothing_written(case, tmp_path, seed_model, capsys):
    path, expect = _bad_file(case, tmp_path, seed_model)
    out = tmp_path / "out"
    assert _tool().main([str(path), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("import_torch_unet: error:"), err
    assert expect in err[0]
    assert not out.exists()
