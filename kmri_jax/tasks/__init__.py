"""The commands' library side: simulate NIfTI volumes, run a trained model on them, evaluate a
checkpoint over the corruption grid, and load checkpoints (ours or converted seed weights).

Modules: ``simulate`` (kmri-simulate), ``infer`` (kmri-infer), ``evaluate`` (kmri-evaluate),
``model_io`` (checkpoint -> model, and writing imported weights as a checkpoint), ``volumes``
(NIfTI in/out, atomic writes), ``figures`` (PNGs), ``errors`` (:class:`TaskError`).
"""

from kmri_jax.tasks.errors import TaskError

__all__ = ["TaskError"]
