"""A PyTorch reference of the seed's model and training step, for benchmarks only.

Written for this project from the seed's description (docs/conventions.md); torch is an
optional extra and nothing in ``kmri_jax`` imports this.

- :func:`seed_unet`: the seed's ``UNet2D`` (1,926,754 parameters at base 32): blocks of two
  3x3 convolutions without bias + BatchNorm + ReLU, 2x2 max pooling, 2x2 stride-2 transposed
  convolutions up, concatenated skips, a 1x1 output convolution; pads H, W to a multiple of 8
  and crops back, like ``kmri_jax.models.UNet``.
- :func:`seed_masked_l1`: the seed's loss, L1 over the top-left valid ``rows x cols`` block of
  the (padded) k-space grid, both channels.
- :class:`SeedTrainStep`: forward, masked L1, backward, Adam; on CPU or CUDA, optional bfloat16
  autocast.
- :func:`numpy_network_io`: the seed's way of making inputs, per sample on the host with NumPy
  (the corruption of ``tools/bench_sim.py``), then the seed's normalisation by ``max|K| + 1e-8``.

Used by ``tools/benchmark.py``, ``tools/bench_unet.py`` and the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class DoubleConv(nn.Module):
    """(3x3 conv without bias -> BatchNorm -> ReLU) x 2, as ``self.block`` (the seed's names)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class SeedUNet(nn.Module):
    """``[B, 2, H, W] -> [B, 2, H, W]``; levels ``c, 2c, 4c, 8c``; ``state_dict`` keys as the
    seed's ``UNet2D`` (``enc1.block.0.weight``, ...), which ``kmri_jax.models.torch_weights``
    converts. Also the independent reference of the tests (tests/conftest.py puts tools/ on
    the path)."""

    def __init__(self, c: int = 32) -> None:
        super().__init__()
        self.enc1, self.enc2 = DoubleConv(2, c), DoubleConv(c, 2 * c)
        self.enc3, self.bottleneck = DoubleConv(2 * c, 4 * c), DoubleConv(4 * c, 8 * c)
        self.pool = nn.MaxPool2d(2)
        self.up3, self.dec3 = nn.ConvTranspose2d(8 * c, 4 * c, 2, 2), DoubleConv(8 * c, 4 * c)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2), DoubleConv(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, 2), DoubleConv(2 * c, c)
        self.out_conv = nn.Conv2d(c, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = nn.functional.pad(x, (0, -w % 8, 0, -h % 8))
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        s3 = self.enc3(self.pool(s2))
        y = self.bottleneck(self.pool(s3))
        y = self.dec3(torch.cat([self.up3(y), s3], 1))
        y = self.dec2(torch.cat([self.up2(y), s2], 1))
        y = self.dec1(torch.cat([self.up1(y), s1], 1))
        return self.out_conv(y)[..., :h, :w]


def seed_unet(base_channels: int = 32) -> SeedUNet:
    """The seed's U-Net, in training mode."""
    return SeedUNet(base_channels).train()


def seed_masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean ``|pred - target|`` over the top-left ``valid[b] = (rows, cols)`` block of each
    sample's grid, both channels. ``pred, target [B, 2, H, W]``, ``valid [B, 2]`` int."""
    _, c, h, w = pred.shape
    rows = torch.arange(h, device=pred.device)[None, :, None] < valid[:, 0, None, None]
    cols = torch.arange(w, device=pred.device)[None, None, :] < valid[:, 1, None, None]
    mask = (rows & cols)[:, None].to(pred.dtype)  # [B, 1, H, W]
    err = (pred.float() - target.float()).abs() * mask
    return err.sum() / (c * mask.sum())


class SeedTrainStep:
    """One seed training step: ``loss = masked_l1(model(x), y)``, backward, Adam(1e-3).

    ``device``: ``"cpu"`` or ``"cuda"``; ``dtype``: ``"float32"`` or ``"bfloat16"`` (autocast;
    parameters and optimizer state stay float32). ``threads`` sets ``torch.set_num_threads``.
    """

    def __init__(self, *, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                 base_channels: int = 32, seed: int = 0) -> None:
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = seed_unet(base_channels).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.autocast = dtype == "bfloat16"
        if device == "cuda":
            torch.backends.cudnn.benchmark = True

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            pred = self.model(x)
        loss = seed_masked_l1(pred, y, valid)
        loss.backward()
        self.opt.step()
        return loss

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def numpy_network_io(rng: np.random.Generator, images: np.ndarray, params: Any,
                     np_corrupt: Any) -> tuple[np.ndarray, np.ndarray]:
    """The seed's inputs, made per sample on the host: corrupt with ``np_corrupt`` (from
    ``tools/bench_sim.py``), then ``x = [Re, Im](K_c) / s``, ``y = [Re, Im](K) / s`` with
    ``s = max|K| + 1e-8``. ``images [B, ny, nx]``; ``params``: per-sample
    ``(A, f, R, SNR, TR, TE)`` rows. Returns ``x, y [B, 2, ny, nx]`` float32."""
    xs, ys = [], []
    for image, (a, f, r, snr, tr, te) in zip(images, params):
        k_c, k, _, _ = np_corrupt(rng, image, a, f, r, snr, tr, te)
        s = np.abs(k).max() + 1e-8
        xs.append(np.stack([k_c.real, k_c.imag]) / s)
        ys.append(np.stack([k.real, k.imag]) / s)
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)
