"""Phantom version 1 (kept to reproduce runs made before version 2): a blocky spine segment
scaled to fill the field of view.

Geometry of one volume, array ``[X, Y, Z]`` = (left->right, posterior->anterior,
inferior->superior), RAS+ affine, 1 mm voxels. The sagittal plane ``[Y, Z]`` holds: the body
(soft tissue between a posterior and an anterior skin line), a curved spinal column (its centre
line follows a smooth lordosis/kyphosis curve) made of vertebral bodies (darker marrow with a
dark cortical rim) separated by bright intervertebral discs, the spinal canal posterior to
them (bright CSF around an intermediate-signal cord), and spinous processes behind the canal.
Lateral slices (away from the midline along X) lose the cord, then the canal and the
vertebrae, as in a real sagittal stack. Each subject draws its own curvature, vertebra and disc
heights, canal and cord widths, body thickness, tissue contrasts, TR/TE, a smooth
multiplicative bias field and Rician-like noise, all from ``(seed, subject number)``.
"""

from __future__ import annotations

import numpy as np


def blocky_volume(shape: tuple[int, int, int], *, seed: int, subject: int) -> np.ndarray:
    """One phantom volume ``[X, Y, Z] float32`` with values roughly in [0, 1].

    Deterministic in ``(shape, seed, subject)``.
    """
    nxl, ny, nz = shape
    rng = np.random.default_rng([seed, subject, 7919])
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    y = np.arange(ny, dtype=np.float64)[:, None] / max(ny - 1, 1)   # 0 posterior .. 1 anterior
    z = np.arange(nz, dtype=np.float64)[None, :] / max(nz - 1, 1)   # 0 inferior .. 1 superior

    # Tissue contrasts (T2-weighted-like), per subject.
    c_soft, c_fat = u(0.25, 0.4), u(0.55, 0.75)
    c_marrow, c_cortex = u(0.3, 0.45), u(0.05, 0.12)
    c_disc, c_annulus = u(0.7, 0.9), u(0.25, 0.35)
    c_csf, c_cord, c_spinous = u(0.85, 1.0), u(0.4, 0.55), u(0.2, 0.3)

    # Body outline (posterior and anterior skin), slightly wavy along z.
    back = u(0.04, 0.1) + 0.02 * np.sin(2 * np.pi * (z * u(0.8, 1.5) + u(0, 1)))
    front = u(0.85, 0.95) - 0.03 * np.sin(2 * np.pi * (z * u(0.5, 1.0) + u(0, 1)))
    fat = u(0.025, 0.05)
    # Spinal column centre line: canal centre at yc(z), curved.
    yc = u(0.3, 0.38) + u(0.03, 0.07) * np.sin(2 * np.pi * (z * u(0.7, 1.2) + u(0, 1))) \
        + u(0.0, 0.03) * np.sin(2 * np.pi * (z * u(1.5, 2.5) + u(0, 1)))
    canal_hw, cord_hw = u(0.035, 0.05), u(0.014, 0.022)
    body_depth = u(0.16, 0.22)               # antero-posterior depth of a vertebral body
    vert_h, disc_h = u(0.045, 0.065), u(0.012, 0.02)   # heights along z (fraction of nz)
    phase = u(0, vert_h + disc_h)

    period = vert_h + disc_h
    zpos = np.mod(z + phase, period)          # position within one vertebra+disc period
    is_disc = zpos < disc_h
    # Distance along y from the anterior wall of the canal.
    dy = y - yc
    in_canal = np.abs(dy) <= canal_hw
    in_cord = np.abs(dy) <= cord_hw
    body_y = (dy > canal_hw + 0.01) & (dy <= canal_hw + 0.01 + body_depth)
    # Rounded vertebral body corners: shrink near the end plates.
    edge = np.minimum(zpos - disc_h, period - zpos) / max(vert_h, 1e-6)
    corner = np.clip(edge * 6, 0, 1)
    body_depth_eff = body_depth * (0.85 + 0.15 * corner)
    in_vert_body = (dy > canal_hw + 0.01) & (dy <= canal_hw + 0.01 + body_depth_eff) & ~is_disc
    cortex = in_vert_body & ((dy <= canal_hw + 0.02) | (dy >= canal_hw + body_depth_eff - 0.005)
                             | (edge < 0.08))
    in_disc = body_y & is_disc
    nucleus = in_disc & (np.abs(dy - (canal_hw + 0.01 + body_depth / 2)) < body_depth * 0.3)
    spinous = (dy < -canal_hw - 0.01) & (dy > -canal_hw - 0.12) \
        & (np.abs(zpos - disc_h - vert_h * 0.5) < vert_h * 0.3)
    inside = (y >= back) & (y <= front)
    subcut = inside & ((y - back < fat) | (front - y < fat))

    xs = (np.arange(nxl) - (nxl - 1) / 2) / max(nxl / 2, 1)      # -1 .. 1 across the stack
    cord_x, canal_x, vert_x = u(0.12, 0.2), u(0.22, 0.3), u(0.45, 0.6)
    bias_y, bias_z, bias_x = u(-0.25, 0.25), u(-0.25, 0.25), u(-0.15, 0.15)
    noise = u(0.01, 0.03)
    vol = np.empty(shape, dtype=np.float32)
    for i, xv in enumerate(xs):
        ax = abs(xv)
        img = np.zeros((ny, nz))
        body_width = np.sqrt(max(1 - (ax / 1.05) ** 2, 0.0))     # the body narrows laterally
        inside_x = inside & (np.abs(y - (back + front) / 2) <= (front - back) / 2 * body_width)
        img[inside_x] = c_soft
        img[inside_x & subcut] = c_fat
        if ax < vert_x:
            img[in_vert_body & inside_x] = c_marrow
            img[cortex & inside_x] = c_cortex
            img[in_disc & inside_x] = c_annulus
            img[nucleus & inside_x] = c_disc
            img[spinous & inside_x] = c_spinous
        if ax < canal_x:
            img[in_canal & inside_x] = c_csf
        if ax < cord_x:
            img[in_cord & inside_x] = c_cord
        bias = 1 + bias_y * (y - 0.5) + bias_z * (z - 0.5) + bias_x * xv
        img = img * bias
        re = img + noise * rng.standard_normal(img.shape)
        im = noise * rng.standard_normal(img.shape)
        vol[i] = np.sqrt(re * re + im * im)
    return vol
