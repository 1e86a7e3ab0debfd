"""Training-time augmentation of the clean slices, on the device before they are corrupted.

``train.augment`` is a comma-separated list (``""``: none):

- ``flips``: each slice is mirrored along its rows and/or its columns with probability 1/2 each.
- ``zoom``: each slice is magnified by a factor drawn uniformly in ``[1, MAX_ZOOM]`` about a
  random window that stays inside it (bilinear), so the network sees the anatomy at several
  scales (at the quickstart's 64 x 96 the whole spine is only a few pixels wide).
- ``gamma``: each slice's contrast is changed by ``x -> m (x / m)^g``, ``m = max x``, ``g``
  log-uniform in ``[1 / MAX_GAMMA, MAX_GAMMA]`` (the phantom's tissue contrasts are one
  sequence's; other anatomy and other weightings distribute their intensities differently).

Every draw is per sample from the step key, so a resumed run repeats it. The corruption is
simulated after the augmentation, so the physics is unchanged; only the anatomy the network
sees is less tied to one orientation and one size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kmri_jax.config import ConfigValueError

AUGMENTS = ("flips", "zoom", "gamma")
MAX_ZOOM = 2.0
MAX_GAMMA = 2.0


def check_augment(config) -> tuple[str, ...]:
    """``train.augment`` as a tuple of names, checked: flips and zoom would move the anatomy
    away from the fixed weight map and field map (referenced to the lungs' position along an
    axis), so they do not mix."""
    raw = config.train.augment
    names = tuple(n.strip() for n in str(raw).split(",") if n.strip())
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise ConfigValueError(f"train.augment must be a comma-separated list of {AUGMENTS} "
                               f"(or ''), got {raw!r}")
    if names and (config.corruption.weight_map or config.corruption.field_map):
        raise ConfigValueError(f"train.augment={raw!r} moves the anatomy, but "
                               "corruption.weight_map/field_map are fixed to its lungs; "
                               "use one or the other")
    return names


def random_flips(key: jax.Array, images: jax.Array) -> jax.Array:
    """``images [B, ny, nx]`` with each slice flipped along rows and/or columns (p = 1/2 each)."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 2))
    rows = jnp.where(flip[:, 0, None, None], images[:, ::-1, :], images)
    return jnp.where(flip[:, 1, None, None], rows[:, :, ::-1], rows)


def random_zoom(key: jax.Array, images: jax.Array, *, max_zoom: float = MAX_ZOOM) -> jax.Array:
    """``images [B, ny, nx]``, each magnified by ``z ~ U(1, max_zoom)`` about a random window
    of ``(ny / z, nx / z)`` pixels inside it: output pixel ``o`` reads input ``c + (o + 0.5) / z
    - 0.5`` (half-centred pixels; ``c`` the window's corner)."""
    b, ny, nx = images.shape
    k_zoom, k_corner = jax.random.split(key)
    zoom = jax.random.uniform(k_zoom, (b,), images.dtype, 1.0, max_zoom)
    size = jnp.asarray([ny, nx], images.dtype)
    corner = jax.random.uniform(k_corner, (b, 2), images.dtype) * size * (1 - 1 / zoom[:, None])

    def one(image, z, c):
        return jax.image.scale_and_translate(image, (ny, nx), (0, 1), jnp.stack([z, z]), -c * z,
                                             method="linear", antialias=False)

    return jax.vmap(one)(images, zoom, corner)


def random_gamma(key: jax.Array, images: jax.Array, *, max_gamma: float = MAX_GAMMA
                 ) -> jax.Array:
    """``images [B, ny, nx]`` (non-negative), each ``m (x / m)^g`` with ``m`` its maximum and
    ``log g ~ U(-log max_gamma, log max_gamma)``."""
    log_g = jax.random.uniform(key, (images.shape[0], 1, 1), images.dtype, -1.0, 1.0)
    g = jnp.exp(log_g * jnp.log(jnp.asarray(max_gamma, images.dtype)))
    m = jnp.max(images, axis=(1, 2), keepdims=True)
    safe = jnp.where(m > 0, m, 1)
    return jnp.where(m > 0, safe * jnp.clip(images / safe, 0, None) ** g, images)


_FUNCTIONS = {"flips": random_flips, "zoom": random_zoom, "gamma": random_gamma}


def augment(names: tuple[str, ...], key: jax.Array, images: jax.Array) -> jax.Array:
    """``images [B, ny, nx]`` through each named augmentation in order (keys folded per name)."""
    for name in names:
        images = _FUNCTIONS[name](jax.random.fold_in(key, AUGMENTS.index(name)), images)
    return images
