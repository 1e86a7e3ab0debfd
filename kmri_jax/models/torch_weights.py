"""PyTorch ``UNet2D`` state_dict -> NNX state of :class:`kmri_jax.models.UNet` (pure numpy).

Torch is not imported: pass ``{name: tensor.detach().cpu().numpy()}``.

Layout mapping (ours <- torch):

==========================  ===========================  ===============================
ours                        torch                        array transform
==========================  ===========================  ===============================
``<blk>.conv{1,2}.kernel``  ``Conv2d.weight``            ``[out, in, 3, 3]`` ->
                                                         ``[3, 3, in, out]``: ``.transpose(2, 3, 1, 0)``
``<blk>.bn{1,2}.scale``     ``BatchNorm2d.weight``       as is ``[C]``
``<blk>.bn{1,2}.bias``      ``BatchNorm2d.bias``         as is
``<blk>.bn{1,2}.mean``      ``BatchNorm2d.running_mean`` as is
``<blk>.bn{1,2}.var``       ``BatchNorm2d.running_var``  as is
``up{3,2,1}.kernel``        ``ConvTranspose2d.weight``   ``[in, out, 2, 2]`` ->
                                                         ``[in, 2, 2, out]``: ``.transpose(0, 2, 3, 1)``
``up{3,2,1}.bias``          ``ConvTranspose2d.bias``     as is ``[out]``
``out_conv.kernel``         ``Conv2d.weight`` (1x1)      ``[out, in, 1, 1]`` -> ``[1, 1, in, out]``
``out_conv.bias``           ``Conv2d.bias``              as is
==========================  ===========================  ===============================

``<blk>`` is one of ``enc1, enc2, enc3, bottleneck, dec3, dec2, dec1``. The up-sampling kernel
needs no spatial flip: ``ConvTranspose2d`` with kernel 2 and stride 2 writes
``y[o, 2h+i, 2w+j] = sum_c x[c, h, w] * weight[c, o, i, j] + bias[o]``, which is exactly our
einsum ``kernel[c, i, j, o]``. ``num_batches_tracked`` is ignored (it only matters for
``momentum=None``). The decoder concatenates ``[up-sampled, skip]`` along channels, in that
order, like ``torch.cat([up, skip], dim=1)``.

Torch names are given by a key map (ours, dotted -> torch); :func:`default_key_map` assumes
blocks built as ``nn.Sequential(conv, bn, relu, conv, bn, relu)`` under an attribute ``block``
(``enc1.block.0.weight``, ``enc1.block.1.running_mean``, ...), the up-sampling layers as
``up3, up2, up1`` and the output layer as ``out_conv``. Pass another map for other names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flax import nnx

__all__ = ["default_key_map", "convert_state_dict", "torch_to_nnx_state"]

_BLOCKS = ("enc1", "enc2", "enc3", "bottleneck", "dec3", "dec2", "dec1")
_UPS = ("up3", "up2", "up1")


def default_key_map(*, block_attr: str = "block") -> dict[str, str]:
    """Our dotted parameter/statistic paths -> the torch state_dict keys (see module doc)."""
    key_map: dict[str, str] = {}
    for blk in _BLOCKS:
        for i, (conv_idx, bn_idx) in enumerate(((0, 1), (3, 4)), start=1):
            key_map[f"{blk}.conv{i}.kernel"] = f"{blk}.{block_attr}.{conv_idx}.weight"
            bn = f"{blk}.{block_attr}.{bn_idx}"
            key_map[f"{blk}.bn{i}.scale"] = f"{bn}.weight"
            key_map[f"{blk}.bn{i}.bias"] = f"{bn}.bias"
            key_map[f"{blk}.bn{i}.mean"] = f"{bn}.running_mean"
            key_map[f"{blk}.bn{i}.var"] = f"{bn}.running_var"
    for up in _UPS:
        key_map[f"{up}.kernel"] = f"{up}.weight"
        key_map[f"{up}.bias"] = f"{up}.bias"
    key_map["out_conv.kernel"] = "out_conv.weight"
    key_map["out_conv.bias"] = "out_conv.bias"
    return key_map


def _transform(our_path: str, value: np.ndarray) -> np.ndarray:
    """Torch layout -> ours for the parameter at ``our_path`` (see the module table)."""
    module, leaf = our_path.rsplit(".", 1)
    if leaf != "kernel":
        return value
    if module.split(".")[0] in _UPS:
        if value.ndim != 4:
            raise ValueError(f"{our_path}: expected a 4-D ConvTranspose2d weight, got {value.shape}")
        return value.transpose(0, 2, 3, 1)  # [in, out, kh, kw] -> [in, kh, kw, out]
    if value.ndim != 4:
        raise ValueError(f"{our_path}: expected a 4-D Conv2d weight, got {value.shape}")
    return value.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray],
    *,
    key_map: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Rename and re-layout a torch ``UNet2D`` state_dict.

    Args:
      state_dict: torch key -> numpy array (float).
      key_map: our dotted path -> torch key; :func:`default_key_map` when ``None``.

    Returns:
      Our dotted path (e.g. ``"enc1.conv1.kernel"``) -> numpy array in our layout.

    Raises:
      KeyError: a torch key the map expects is missing, or the state_dict has keys the map does
        not use (other than ``num_batches_tracked``); the message lists them.
    """
    key_map = default_key_map() if key_map is None else dict(key_map)
    missing = sorted(k for k in key_map.values() if k not in state_dict)
    unused = sorted(
        k
        for k in set(state_dict) - set(key_map.values())
        if not k.endswith("num_batches_tracked")
    )
    if missing or unused:
        raise KeyError(
            "torch state_dict does not match the U-Net key map: "
            f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
            f"unexpected {unused[:8]}{' ...' if len(unused) > 8 else ''}. "
            "Pass key_map= to name the seed's layers."
        )
    return {ours: _transform(ours, np.asarray(state_dict[theirs])) for ours, theirs in key_map.items()}


def torch_to_nnx_state(
    state_dict: Mapping[str, np.ndarray],
    model: nnx.Module,
    *,
    key_map: Mapping[str, str] | None = None,
) -> nnx.State:
    """The NNX state of ``model`` (params and BatchNorm statistics) filled from a torch
    state_dict; apply it with ``nnx.update(model, state)``.

    ``model`` fixes the structure, shapes and dtypes (it may be abstract, from
    ``nnx.eval_shape``); every one of its variables must be provided, with the same shape.

    Raises:
      KeyError: names missing on either side (see :func:`convert_state_dict`).
      ValueError: a shape mismatch, naming the parameter and both shapes (e.g. a different
        ``base_channels``).
    """
    arrays = convert_state_dict(state_dict, key_map=key_map)
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    flat = nnx.to_flat_state(state)
    ours = {".".join(map(str, path)): (path, var) for path, var in flat}
    missing = sorted(set(ours) - set(arrays))
    extra = sorted(set(arrays) - set(ours))
    if missing or extra:
        raise KeyError(
            f"key map does not cover the model: model variables without a value {missing[:8]}, "
            f"values without a model variable {extra[:8]}"
        )
    new_flat = []
    for name, (path, var) in ours.items():
        value = arrays[name]
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(
                f"{name}: torch weight gives shape {tuple(value.shape)}, the model has "
                f"{tuple(var.shape)} (wrong base_channels?)"
            )
        new_flat.append((path, var.replace(np.asarray(value, dtype=var.dtype))))
    return nnx.from_flat_state(new_flat)
