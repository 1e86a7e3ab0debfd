"""An image-domain U-Net: the zero-filled complex image in, the corrected image out (residual).

The seed's data and optimizer with fresh on-device corruption (as ``default.py``), the network
of ``model.kind = "image_unet"`` and a k-space + image L1 loss. On the quickstart's phantom it
reaches SSIM 0.48 where the oracle bound (true motion undone, zero-filled) is 0.39
(docs/results.md).

Run (a BIDS dataset such as OpenNeuro ds005616; without it the built-in phantom data)::

    kmri-train --config experiments/image_unet.py:/path/to/ds005616 --workdir runs/image_unet
"""

from kmri_jax.config import image_domain_config


def get_config(arg: str | None = None):
    """``arg``: optional data root (same as ``--config.data.root``)."""
    return image_domain_config("image_unet", arg)
