"""The training-free motion estimate undone, then an image U-Net: physics removes the motion,
the network what physics cannot (undersampling, noise).

``image_unet.py`` with ``model.kind = "estimate_unet"``: at evaluation and inference each
line's displacement is ``kmri_jax.correct.estimate_motion`` (no training, no clean data),
undone exactly before the image U-Net. The training step undoes the true displacement instead
(known in simulation, with the estimate's constant), so it costs what an image U-Net's step
does; the search runs once per evaluation corruption. Of the recipes measured it generalises
best to other, real anatomy (docs/results.md); the quickstart is this recipe at 64 x 96 with
``train.augment = "flips,gamma"`` (trained on one phantom, it needs the augmentation to carry
over to other anatomy; add it here too when the training data is a single kind of anatomy).

Run (a BIDS dataset such as OpenNeuro ds005616; without it the built-in phantom data)::

    kmri-train --config experiments/estimate_unet.py:/path/to/ds005616 --workdir runs/estimate_unet
"""

from kmri_jax.config import image_domain_config


def get_config(arg: str | None = None):
    """``arg``: optional data root (same as ``--config.data.root``)."""
    return image_domain_config("estimate_unet", arg)
