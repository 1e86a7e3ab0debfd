"""kmri_jax: breathing-motion corruption simulated in MRI k-space on the accelerator, and a
U-Net trained to undo it.

Subpackages, in data-flow order: ``data`` (NIfTI volumes -> slice store -> Grain batches),
``sim`` (the differentiable corruption simulator), ``models`` (the U-Net), ``train`` (the loop).
"""

__version__ = "0.1.0"
