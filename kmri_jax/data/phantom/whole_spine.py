"""Phantom version 2: a sagittal stack of the whole spine, from the skull base to the coccyx.

Array ``[X, Y, Z]`` = (left->right, posterior->anterior, inferior->superior), RAS+. Whatever
the shape, the readout (columns, Z) spans ``FOV_SI_MM``, the rows ``FOV_AP_MM`` and the stack
``SLAB_MM`` left-right, so the voxel size follows the shape (1.03 x 0.75 mm in-plane at the
seed's 424 x 736) and is written in the NIfTI affine. Anatomy, each dimension a per-subject draw around the values below:

- C2-C7, T1-T12, L1-L5, S1-S5 and the coccyx stacked along a curved centre line (cervical
  lordosis, thoracic kyphosis, lumbar lordosis, sacral kyphosis, with the neck and lower back
  lifted off the table). Per level: body height and antero-posterior depth, disc height,
  transverse width, canal, cord and spinous-process size (``LEVEL_ANCHORS``: adult ranges as
  reported by Busscher et al., Eur Spine J 2010, 19:1104, for vertebrae and discs, and by
  Frostell et al., Front Neurol 2016, 7:238, for the cord), end plates perpendicular to the
  centre line, cortical rims, disc nucleus and annulus (lower lumbar discs may be degenerated:
  darker and thinner), laminae, pedicles and spinous processes (thoracic ones slope down).
- Canal: epidural fat, the CSF-filled thecal sac (ending near S2) and the cord (ending in the
  conus near L1-L2), elliptic in cross-section, so lateral slices lose them.
- Around: skull base, brain and brainstem, airway (pharynx to the carina), paraspinal and
  wall muscles, subcutaneous fat, lungs with the diaphragm's dome and posterior recess, the
  heart and the descending aorta (flow voids), liver and bowel.

Rendering: labels on a grid ``SUPERSAMPLE`` times finer in-plane, averaged per pixel (partial
volume at every edge); each tissue's T2-weighted contrast (``CONTRAST``) times
``1 + amplitude * field`` (``TEXTURE``: band-limited random fields), a posterior receive bias
field, and Rician noise. The lungs are where the weight map and field map of
``docs/realism.md`` are referenced: :func:`whole_spine_volume` returns their landmarks.
"""

from __future__ import annotations

import numpy as np

from kmri_jax.data.phantom.texture import band_limited_field, bias_field

FOV_SI_MM = 760.0
FOV_AP_MM = 320.0
SLAB_MM = 60.0
TABLE_MM = 25.0                 # posterior skin on the table, from the posterior FOV edge

TISSUES = ("air", "soft", "fat", "muscle", "marrow", "cortex", "annulus", "nucleus", "csf",
           "cord", "lung", "liver", "blood", "brain", "bowel")
CONTRAST = {  # relative T2-weighted TSE signal, (low, high) per subject; CSF the brightest
    "air": (0.0, 0.0), "soft": (0.28, 0.36), "fat": (0.7, 0.85), "muscle": (0.15, 0.22),
    "marrow": (0.38, 0.55), "cortex": (0.03, 0.07), "annulus": (0.14, 0.22),
    "nucleus": (0.6, 0.85), "csf": (0.9, 1.0), "cord": (0.35, 0.45), "lung": (0.03, 0.06),
    "liver": (0.14, 0.2), "blood": (0.04, 0.1), "brain": (0.4, 0.5), "bowel": (0.25, 0.4)}
TEXTURE = {  # (field, amplitude): fine ~3 mm, coarse ~12 mm, fibre elongated along Z
    "soft": ("coarse", 0.08), "fat": ("coarse", 0.04), "muscle": ("fibre", 0.12),
    "marrow": ("fine", 0.15), "nucleus": ("coarse", 0.05), "csf": ("fine", 0.02),
    "cord": ("coarse", 0.03), "lung": ("fine", 0.6), "liver": ("coarse", 0.06),
    "brain": ("coarse", 0.06), "bowel": ("coarse", 0.3), "blood": ("coarse", 0.2)}
FIELD_SIGMA_MM = {"fine": (1.5, 1.5, 1.5), "coarse": (6.0, 6.0, 6.0), "fibre": (1.5, 1.5, 8.0)}

LEVELS = ([f"C{i}" for i in range(2, 8)] + [f"T{i}" for i in range(1, 13)]
          + [f"L{i}" for i in range(1, 6)] + [f"S{i}" for i in range(1, 6)] + ["Co"])
ANCHOR_COLUMNS = ("body", "disc", "depth", "width", "canal_ap", "canal_lr", "sac", "cord_ap",
                  "cord_lr", "spinous", "drop")
LEVEL_ANCHORS = {  # mm (half-sizes for width, canal, cord); "sac": thecal sac / canal size
    "C2": (22, 5, 16, 9, 8.0, 12, 0.9, 4.0, 6.0, 25, 2),
    "C7": (15, 5, 17, 11, 7.5, 12, 0.9, 4.0, 6.5, 30, 4),
    "T1": (16, 4, 18, 13, 7.0, 9, 0.85, 3.5, 5.0, 35, 8),
    "T7": (20, 5, 23, 15, 6.8, 8.5, 0.85, 3.0, 4.3, 40, 16),
    "T12": (23, 7, 28, 19, 7.5, 10, 0.8, 3.3, 4.5, 32, 6),
    "L1": (25, 10, 30, 21, 8.0, 11, 0.75, 3.0, 4.0, 30, 2),
    "L2": (26, 10, 31, 22, 8.0, 11, 0.75, 0.0, 0.0, 30, 0),
    "L5": (27, 11, 33, 25, 8.5, 12, 0.7, 0.0, 0.0, 25, 0),
    "S1": (24, 2, 30, 25, 6.5, 10, 0.6, 0.0, 0.0, 15, 0),
    "S3": (18, 2, 22, 18, 5.0, 8, 0.0, 0.0, 0.0, 10, 0),
    "S5": (12, 2, 14, 12, 3.5, 5, 0.0, 0.0, 0.0, 6, 0),
    "Co": (22, 0, 9, 7, 0.0, 0.1, 0.0, 0.0, 0.0, 0, 0)}


def _level_table(rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """Per-level sizes (mm): the anchors interpolated over the levels, jittered per subject."""
    index = [LEVELS.index(name) for name in LEVEL_ANCHORS]
    anchors = np.array(list(LEVEL_ANCHORS.values()), np.float64)
    table = {}
    for j, col in enumerate(ANCHOR_COLUMNS):
        values = np.interp(np.arange(len(LEVELS)), index, anchors[:, j])
        if col not in ("sac", "drop"):
            values = values * scale * rng.uniform(0.92, 1.08, len(LEVELS))
        table[col] = values
    table["nucleus_gain"] = np.ones(len(LEVELS))
    for name in ("L3", "L4", "L5"):                  # disc below the level may be degenerated
        if rng.uniform() < 0.3:
            i = LEVELS.index(name)
            table["nucleus_gain"][i] = rng.uniform(0.3, 0.5)
            table["disc"][i] *= 0.7
    return table


def _smooth_profile(u: np.ndarray, knots: list[tuple[float, float]], sigma_mm: float = 20.0):
    """A smooth 1-D profile through ``(u, value)`` knots, evaluated at ``u`` (mm)."""
    grid = np.arange(-200.0, FOV_SI_MM + 200.0, 1.0)
    ku, kv = np.array(knots, np.float64).T
    order = np.argsort(ku)
    raw = np.interp(grid, ku[order], kv[order])
    t = np.arange(-3 * sigma_mm, 3 * sigma_mm + 1)
    kernel = np.exp(-0.5 * (t / sigma_mm) ** 2)
    padded = np.pad(raw, len(t) // 2, mode="edge")
    smooth = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    return np.interp(u, grid, smooth)


class _Body:
    """One subject's geometry as 1-D profiles along ``u`` (mm from the FOV's superior edge)."""

    def __init__(self, rng: np.random.Generator):
        u_ = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.scale = scale = u_(0.86, 0.95)
        self.levels = lv = _level_table(rng, scale)
        self.s0 = u_(45.0, 70.0)                               # top of C2 along the curve
        heights = lv["body"] + lv["disc"]
        self.tops = self.s0 + np.concatenate([[0.0], np.cumsum(heights)[:-1]])
        self.centres = self.tops + lv["body"] / 2
        self.spine_end = self.tops[-1] + lv["body"][-1]
        top = lambda name: float(self.tops[LEVELS.index(name)])  # noqa: E731
        mid = lambda name: float(self.centres[LEVELS.index(name)])  # noqa: E731
        t, neck = TABLE_MM, (self.s0 + top("T1")) / 2
        back = [(-100, t), (self.s0 - 25, t), (neck, t + u_(20, 40)), (top("T1") + 20, t + 3),
                (mid("T6"), t), (top("L1"), t + 4), (mid("L3"), t + u_(10, 30)),
                (top("S1") + 40, t), (FOV_SI_MM + 100, t)]
        depth = [(-100, 58), (self.s0, 52), (neck, 48), (top("T1"), 58), (mid("T6"), 55),
                 (top("L1"), 64), (mid("L3"), 74), (top("S1"), 78), (mid("S3"), 50),
                 (self.spine_end, 22), (FOV_SI_MM + 100, 15)]
        habitus, belly = u_(0.85, 1.12), u_(0.9, 1.3)
        ap = [(-100, 185), (self.s0 - 20, 170), (neck, 115), (top("T1"), 150), (mid("T4"), 215),
              (mid("T8"), 235), (top("L1"), 220), (mid("L3"), 215 * belly), (top("S1"), 215),
              (top("S1") + 80, 200), (FOV_SI_MM + 100, 190)]
        fat_back, fat_front = u_(6, 20), u_(8, 35)
        self.profile_knots = {
            "back": back, "depth": [(a, b * scale) for a, b in depth],
            "ap": [(a, b * habitus) for a, b in ap],
            "fat_back": [(-100, 5), (self.s0 - 20, 5), (neck, fat_back), (mid("L3"),
                         fat_back * 1.4), (top("S1") + 60, fat_back * 2), (FOV_SI_MM + 100,
                         fat_back * 2)],
            "fat_front": [(-100, 5), (self.s0 - 20, 5), (neck, fat_front * 0.5),
                          (mid("T6"), fat_front), (mid("L3"), fat_front * belly * 1.3),
                          (FOV_SI_MM + 100, fat_front * belly)]}
        self.apex_s = top("T1") - 15 * scale
        self.recess_s = top("T12")
        self.dome_mm = u_(45.0, 70.0) * scale
        self.liver_mm = u_(110.0, 160.0) * scale
        self.heart = (mid("T7") + 10, u_(45, 55), u_(-20, -10))   # (s, ry mm, x mm)
        self.aorta_s = (mid("T4"), mid("L4"))
        self.airway_s = (self.s0 - 30, mid("T4"))
        self.lamina_x = 8.0
        # The canal's centre line y_c(u) and the arc length s(u) along it (s = 0 at u = 0).
        self.grid_u = np.arange(-200.0, FOV_SI_MM + 200.0, 0.5)
        self.yc = (_smooth_profile(self.grid_u, self.profile_knots["back"])
                   + _smooth_profile(self.grid_u, self.profile_knots["depth"]))
        self.slope = np.gradient(self.yc, self.grid_u)
        arc = np.concatenate([[0.0], np.cumsum(np.sqrt(1 + self.slope ** 2)[1:] * 0.5)])
        self.arc = arc - np.interp(0.0, self.grid_u, arc)

    def u_of_s(self, s):
        """The FOV position ``u`` (mm) of the centre line's point at arc length ``s``."""
        return np.interp(s, self.arc, self.grid_u)


def _interp_s(s: np.ndarray, body: _Body, column: str) -> np.ndarray:
    """A level column interpolated smoothly along the curve (``s`` mm)."""
    return np.interp(s, body.centres, body.levels[column])


def _labels(body: _Body, x_mm: float, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Tissue indices (``TISSUES``) of one sagittal slice on the grid ``y [Ny, 1] x u [1, Nu]``."""
    lv, ax = body.levels, abs(x_mm)
    code = {name: np.int8(i) for i, name in enumerate(TISSUES)}
    u_of_s = body.u_of_s
    yc, slope = np.interp(u, body.grid_u, body.yc), np.interp(u, body.grid_u, body.slope)
    norm = np.sqrt(1 + slope ** 2)
    s_col = np.interp(u, body.grid_u, body.arc)
    n = (y - yc) / norm                                 # across the spine, + anterior
    s = s_col + (y - yc) * slope / norm                 # along it, + inferior
    yb = _smooth_profile(u, body.profile_knots["back"])
    yf = yb + _smooth_profile(u, body.profile_knots["ap"])
    fat_back = _smooth_profile(u, body.profile_knots["fat_back"])      # subcutaneous fat, mm
    fat_front = _smooth_profile(u, body.profile_knots["fat_front"])
    inside = (y >= yb) & (y <= yf)
    canal_ap = _interp_s(s, body, "canal_ap")
    front_y = yc + (_interp_s(s_col, body, "canal_ap") + 1 + _interp_s(s_col, body, "depth")) \
        * norm                                           # anterior face of the bodies, per column
    lab = np.where(inside, code["soft"], code["air"]).astype(np.int8)

    # Head above C1: brain behind the clivus, soft tissue in front; skull under the scalp.
    u_c1 = u_of_s(body.s0 - 12)
    head = inside & (u < u_c1)
    lab[head & (n < canal_ap + 15)] = code["brain"]
    skull = head & (y - yb > 5) & (y - yb < 13)
    lab[skull] = code["cortex"]
    lab[skull & (y - yb > 7) & (y - yb < 11)] = code["marrow"]
    lab[head & (n > canal_ap + 3) & (n < canal_ap + 15)] = code["marrow"]   # clivus

    # Below the diaphragm: liver under the dome, bowel below; pelvis bowel.
    cavity_post = np.maximum(yc - 10 + (front_y - yc + 10) * np.clip((22 - ax) / 10, 0, 1),
                             yb + fat_back + 15)
    cavity_ant = yf - fat_front - 12
    v = np.clip((y - cavity_post) / np.maximum(cavity_ant - cavity_post, 1.0), 0, 1)
    u_recess, u_apex = u_of_s(body.recess_s), u_of_s(body.apex_s)
    u_diaph = u_recess - body.dome_mm * np.sqrt(np.sin(np.pi / 2 * np.minimum(v / 0.6, 1)))
    u_top = u_apex + 25 * v ** 2
    abdomen = inside & (u > u_diaph) & (y > front_y + 5) & (u > u_apex)
    lab[abdomen] = code["bowel"]
    lab[abdomen & (u < u_diaph + body.liver_mm * (1 - 0.4 * v)) & (v > 0.15)] = code["liver"]

    # Muscles: paraspinal behind the canal, prevertebral in the neck, the anterior wall.
    spine_s = (s > body.s0 - 12) & (s < body.spine_end)
    lab[inside & spine_s & (n < -canal_ap - 1) & ~head] = code["muscle"]
    neck = inside & (s < body.tops[LEVELS.index("T1")]) & ~head
    body_front_n = canal_ap + 1 + _interp_s(s, body, "depth")
    lab[neck & (n > body_front_n) & (n < body_front_n + 5)] = code["muscle"]
    trunk = (u > u_of_s(body.tops[LEVELS.index("T1")])) & (u < u_of_s(body.spine_end) + 50)
    lab[inside & trunk & (y > yf - fat_front - 12) & (y < yf - fat_front)] = code["muscle"]
    # Subcutaneous fat.
    lab[inside & ((y - yb < fat_back) | (yf - y < fat_front))] = code["fat"]

    # Thoracic cavity: lungs, mediastinum, heart, descending aorta.
    cavity = inside & (y > cavity_post) & (y < cavity_ant) & (u > u_top) & (u < u_diaph)
    lab[cavity] = code["lung"]
    lab[cavity & (ax < 10)] = code["soft"]
    hs, hry, hx = body.heart
    hu, hy = u_of_s(hs), cavity_ant - hry * 0.9
    heart_r = ((u - hu) / (60 * body.scale)) ** 2 + ((y - hy) / hry) ** 2 + ((x_mm - hx) / 55) ** 2
    lab[cavity & (heart_r <= 1)] = code["muscle"]
    lab[cavity & (heart_r <= 0.45)] = code["blood"]
    r_ao, x_ao = 11 * body.scale, -18.0
    in_aorta = (((y - front_y - r_ao - 2) / r_ao) ** 2 + ((x_mm - x_ao) / r_ao) ** 2 <= 1) \
        & (u > u_of_s(body.aorta_s[0])) & (u < u_of_s(body.aorta_s[1])) & inside
    lab[in_aorta] = code["blood"]

    # Airway: pharynx and trachea in front of the cervical spine.
    airway_n = body_front_n + 5 + 9
    in_air = (((n - airway_n) / 8) ** 2 + (x_mm / 9) ** 2 <= 1) \
        & (s > body.airway_s[0]) & (s < body.airway_s[1])
    lab[in_air & inside] = code["air"]

    # The spine: level lookup along the curve.
    idx = np.clip(np.searchsorted(body.tops, s, side="right") - 1, 0, len(LEVELS) - 1)
    local = s - body.tops[idx]
    bh, dh, depth = lv["body"][idx], lv["disc"][idx], lv["depth"][idx]
    in_spine = (s >= body.tops[0]) & (s < body.spine_end)
    lateral = np.sqrt(np.clip(1 - (ax / lv["width"]) ** 2, 0, 1))[idx]
    centre_n = canal_ap + 1 + depth / 2
    corner = np.clip(np.minimum(local, bh - local) / bh * 6, 0, 1)
    half = depth / 2 * lateral * (0.88 + 0.12 * corner)
    in_body = in_spine & (local < bh) & (np.abs(n - centre_n) <= half)
    lab[in_body] = code["marrow"]
    lab[in_body & ((half - np.abs(n - centre_n) < 1.2) | (local < 1.0) | (bh - local < 1.0))] \
        = code["cortex"]
    in_disc = in_spine & (local >= bh) & (local < bh + dh) \
        & (np.abs(n - centre_n) <= depth / 2 * lateral * 1.02)
    lab[in_disc] = code["annulus"]
    in_gap = (local - bh > 0.2 * dh) & (local - bh < 0.8 * dh)
    nucleus = in_disc & in_gap & (np.abs(n - centre_n) <= 0.5 * depth / 2 * lateral) \
        & (idx < LEVELS.index("S1"))
    lab[nucleus] = code["nucleus"]
    # Posterior elements (thoracic spinous processes slope down: shifted by "drop").
    sp = s - _interp_s(s, body, "drop")
    idx_p = np.clip(np.searchsorted(body.tops, sp, side="right") - 1, 0, len(LEVELS) - 1)
    local_p, bh_p = sp - body.tops[idx_p], lv["body"][idx_p]
    canal_lr = _interp_s(s, body, "canal_lr")
    in_spine_p = in_spine & (idx_p < LEVELS.index("Co"))
    lamina = in_spine_p & (local_p > 0.1 * bh_p) & (local_p < 0.85 * bh_p) \
        & (n > -canal_ap - 7) & (n < -canal_ap - 1) & (ax < canal_lr + body.lamina_x)
    spinous = in_spine_p & (np.abs(local_p - 0.5 * bh_p) < 0.3 * bh_p) & (ax < 4) \
        & (n < -canal_ap - 4) & (n > -canal_ap - lv["spinous"][idx_p])
    pedicle = in_spine & (local > 0.05 * bh) & (local < 0.6 * bh) & (np.abs(n) <= canal_ap) \
        & (ax > canal_lr) & (ax < canal_lr + 7)
    lab[lamina | spinous | pedicle] = code["marrow"]
    # C1: anterior and posterior arches.
    c1 = (s > body.s0 - 12) & (s < body.s0 - 3) & (ax < 25)
    lab[c1 & (((n > canal_ap + 1) & (n < canal_ap + 11)) | ((n > -canal_ap - 9)
                                                             & (n < -canal_ap - 1)))] = code["marrow"]

    # Canal: epidural fat, thecal sac (CSF), cord / brainstem; elliptic cross-sections.
    def ellipse(ap_half: np.ndarray, lr_half: np.ndarray) -> np.ndarray:
        return ap_half * np.sqrt(np.clip(1 - (ax / np.maximum(lr_half, 1e-6)) ** 2, 0, 1))

    sac = _interp_s(s, body, "sac")
    cord_ap = np.where(s < body.s0, 4 + np.clip(body.s0 - s, 0, None) * 0.08,
                       _interp_s(s, body, "cord_ap"))
    cord_lr = np.where(s < body.s0, 6 + np.clip(body.s0 - s, 0, None) * 0.1,
                       _interp_s(s, body, "cord_lr"))
    canal_zone = inside & (s < body.spine_end)
    lab[canal_zone & ~head & (np.abs(n) <= ellipse(canal_ap, canal_lr))] = code["fat"]
    lab[canal_zone & (np.abs(n) <= ellipse(np.where(s < body.s0, canal_ap + 2, sac * canal_ap),
                                           np.where(s < body.s0, canal_lr, sac * canal_lr)))] \
        = code["csf"]
    lab[canal_zone & (np.abs(n) <= ellipse(np.minimum(cord_ap, 10), cord_lr))] = code["cord"]
    lab[~inside] = code["air"]
    return lab


def whole_spine_volume(shape: tuple[int, int, int], *, seed: int, subject: int,
                       texture: bool = True, bias: bool = True, noise: bool = True,
                       supersample: int | None = None) -> tuple[np.ndarray, dict]:
    """One phantom-v2 volume ``[X, Y, Z] float32`` (values about 0..1) and its geometry.

    Deterministic in ``(shape, seed, subject)``. ``texture``, ``bias`` and ``noise`` switch
    those layers off (for tests); ``supersample`` (default 3, 2 above 200k pixels per slice)
    is the in-plane rendering factor per axis.

    Returns:
      ``(volume, info)``: ``info`` has ``spacing_mm`` (X, Y, Z) and the readout landmarks as
      fractions of the Z axis (0 = first column, inferior): ``lung_apex``,
      ``diaphragm_dome``, ``diaphragm_recess``, ``conus`` (top of L2) and the cervico-thoracic,
      thoraco-lumbar and lumbo-sacral junctions ``C7_T1``, ``T12_L1``, ``L5_S1`` (top of the
      lower vertebra).
    """
    nxl, ny, nz = shape
    ss = supersample or (3 if ny * nz <= 200_000 else 2)
    rng = np.random.default_rng([seed, subject, 2])
    body = _Body(rng)
    contrast = {t: float(rng.uniform(*CONTRAST[t])) for t in TISSUES}
    hz = FOV_SI_MM / nz
    hy = FOV_AP_MM / ny
    hx = SLAB_MM / nxl
    y_fine = ((np.arange(ny * ss) + 0.5) * hy / ss)[:, None]
    u_fine = FOV_SI_MM - ((np.arange(nz * ss) + 0.5) * hz / ss)[None, :]
    x_mm = (np.arange(nxl) - (nxl - 1) / 2) * hx
    fields = {name: band_limited_field(rng, shape, sigma_px=(sx / hx, sy / hy, sz / hz))
              for name, (sx, sy, sz) in FIELD_SIGMA_MM.items()}

    vol = np.zeros(shape, np.float32)
    for i, x in enumerate(x_mm):
        lab = _labels(body, float(x), y_fine, u_fine)      # columns inferior -> superior
        for t, name in enumerate(TISSUES):
            if contrast[name] == 0:
                continue
            frac = (lab == t).reshape(ny, ss, nz, ss).mean(axis=(1, 3), dtype=np.float32)
            gain = contrast[name] * (1 + (TEXTURE[name][1] * fields[TEXTURE[name][0]][i]
                                          if texture and name in TEXTURE else 0.0))
            vol[i] += frac * np.clip(gain, 0, None)
    if bias:
        vol *= bias_field(rng, (np.arange(ny) + 0.5) * hy, (np.arange(nz) + 0.5) * hz, x_mm,
                          posterior_mm=TABLE_MM, depth_mm=float(rng.uniform(180, 300)),
                          strength=float(rng.uniform(0.1, 0.25)))
    vol /= max(float(np.percentile(vol, 99.9)), 1e-6)
    if noise:
        sigma = float(rng.uniform(0.01, 0.025))
        vol = np.hypot(vol + sigma * rng.standard_normal(shape),
                       sigma * rng.standard_normal(shape)).astype(np.float32)

    fraction = lambda u: float(1 - u / FOV_SI_MM)  # noqa: E731
    info = {"spacing_mm": (hx, hy, hz), "lung_apex": fraction(body.u_of_s(body.apex_s)),
            "diaphragm_dome": fraction(body.u_of_s(body.recess_s) - body.dome_mm),
            "diaphragm_recess": fraction(body.u_of_s(body.recess_s)),
            "conus": fraction(body.u_of_s(body.tops[LEVELS.index("L2")]))}
    for upper, lower in (("C7", "T1"), ("T12", "L1"), ("L5", "S1")):
        info[f"{upper}_{lower}"] = fraction(body.u_of_s(body.tops[LEVELS.index(lower)]))
    return vol, info
