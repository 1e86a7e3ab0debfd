"""The U-Net (architecture only; no training code, no simulator import)."""

from kmri_jax.models.unet import UNet, count_params

__all__ = ["UNet", "count_params"]
