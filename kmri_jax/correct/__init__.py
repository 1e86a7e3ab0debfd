"""kmri_jax.correct: training-free correction of the simulator's per-line readout motion.

::

    from kmri_jax import correct, sim

    d_hat = correct.estimate_motion(out.kspace, out.mask)          # [ny] px, see centre_displacement
    fixed = correct.undo_motion(out.kspace, d_hat)                 # [ny, nx] complex64
    best = correct.oracle(out)                                     # true motion undone

Batches: ``jax.jit(jax.vmap(functools.partial(correct.estimate_motion, max_shift=10.0)))``.
Depends only on :mod:`kmri_jax.sim` and JAX.
"""

from kmri_jax.correct.focus import gradient_entropy, image_entropy
from kmri_jax.correct.motion import (centre_displacement, default_n_focus, estimate_motion,
                                    oracle, undo_motion)

__all__ = [
    "centre_displacement",
    "default_n_focus",
    "estimate_motion",
    "gradient_entropy",
    "image_entropy",
    "oracle",
    "undo_motion",
]
