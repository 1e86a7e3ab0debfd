"""A smooth test image for the B0 and coil tests (a broad blob plus a periodic pattern, so
that shifts and phases act on every frequency band)."""

import numpy as np


def smooth_image(ny: int, nx: int, dtype=np.float32) -> np.ndarray:
    """``[ny, nx]`` smooth real image."""
    y, x = np.mgrid[:ny, :nx]
    img = (np.exp(-((y - ny / 2) ** 2 / (0.1 * ny**2) + (x - nx / 2) ** 2 / (0.08 * nx**2)))
           + 0.3 * np.cos(2 * np.pi * x / nx) * np.sin(2 * np.pi * y / ny))
    return img.astype(dtype)
