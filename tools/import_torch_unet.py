"""Convert the seed's PyTorch U-Net weights (``unet_best.pt``) into a kmri_jax checkpoint.

Usage::

    python tools/import_torch_unet.py results/unet_best.pt --output runs/seed_weights \\
        [--ny 424 --nx 736]

The file is read with ``torch.load(..., map_location="cpu", weights_only=True)`` (PyTorch is an
optional extra: ``pip install -e '.[torch]'``); it must hold the ``state_dict`` of the seed's
``UNet2D`` (or a dict with it under ``state_dict`` / ``model_state_dict`` / ``model``; a
``module.`` prefix from ``DataParallel`` is removed). ``base_channels`` is read from the first
convolution (``enc1.<block>.0.weight``, ``[base, 2, 3, 3]``; 32 for the seed), every key and
shape is checked against the seed architecture at that width, and the weights, including the
BatchNorm running statistics, are converted by :func:`kmri_jax.models.torch_weights.
torch_to_nnx_state`.

The result is ``<output>/checkpoints/0``, laid out as the training loop writes it, with the
config of ``experiments/seed_replica.py`` (``model.residual = False``: the seed's network
predicts the clean k-space itself) at the given ``base_channels`` and slice size
``--ny x --nx`` (the seed's 424 x 736). So

- ``kmri-infer --checkpoint <output> ...`` and ``kmri-evaluate --checkpoint <output> ...``
  run the seed's model;
- ``kmri-train --config experiments/seed_replica.py:DATA --workdir <output>`` continues
  training from these weights (the loop resumes from the workdir's latest checkpoint, step 0,
  with a fresh Adam state). The training config must keep ``model.residual=False`` and the same
  ``model.base_channels``.

Exit status: 0 ok; 1 bad input (one line ``import_torch_unet: error: ...`` on stderr, nothing
written); 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROG = "import_torch_unet"
_NESTED = ("state_dict", "model_state_dict", "model")
_REPO = Path(__file__).resolve().parents[1]


class InputError(Exception):
    """A problem with the input file or the output folder; the message is for the user."""


def _load_torch_file(path: Path) -> dict[str, Any]:
    """The state_dict in ``path`` as ``{name: torch.Tensor}``."""
    if not path.is_file():
        raise InputError(f"{os.fspath(path)!r} does not exist (expected the seed's "
                           "unet_best.pt, a PyTorch state_dict)")
    try:
        import torch
    except ImportError:
        raise InputError("reading .pt files needs PyTorch: pip install -e '.[torch]' "
                           "(a CPU build is enough)") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{os.fspath(path)!r} is not a PyTorch file readable with "
                           f"weights_only=True ({type(e).__name__}: {first[:200]})") from None
    if isinstance(obj, Mapping):
        for key in _NESTED:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        kind = type(obj).__name__
        raise InputError(f"{os.fspath(path)!r} holds a {kind}, not a state_dict (a dict of "
                           "parameter name -> tensor); save it with "
                           "torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _block_attr(keys: Sequence[str]) -> str:
    """The attribute holding each block's ``nn.Sequential``: ``enc1.<attr>.0.weight``."""
    found = sorted(k.split(".")[1] for k in keys
                   if k.startswith("enc1.") and k.endswith(".0.weight") and k.count(".") == 3)
    if len(found) != 1:
        raise InputError("the state_dict is not the seed's UNet2D: no first convolution "
                           "'enc1.<block>.0.weight' (its keys start "
                           f"{sorted(keys)[:4]})")
    return found[0]


def _expected_torch_shapes(base: int, key_map: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """The torch shape of every key of the seed architecture with ``base`` channels."""
    from flax import nnx

    from kmri_jax.models import UNet

    model = nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0), base_channels=base))
    flat = nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))
    ours = {".".join(map(str, path)): tuple(var.shape) for path, var in flat}
    shapes = {}
    for name, theirs in key_map.items():
        s = ours[name]
        if name.endswith(".kernel") and name.startswith("up"):
            s = (s[0], s[3], s[1], s[2])  # ours [in, kh, kw, out] <- torch [in, out, kh, kw]
        elif name.endswith(".kernel"):
            s = (s[3], s[2], s[0], s[1])  # ours [kh, kw, in, out] <- torch [out, in, kh, kw]
        shapes[theirs] = s
    return shapes


def _check(state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
           base: int) -> None:
    """Every expected key present with its shape, no unknown keys; names the differences."""
    problems = []
    missing = sorted(set(expected) - set(state_dict))
    unknown = sorted(k for k in set(state_dict) - set(expected)
                     if not k.endswith("num_batches_tracked"))
    if missing:
        problems.append(f"missing keys {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if unknown:
        problems.append(f"unexpected keys {unknown[:6]}{' ...' if len(unknown) > 6 else ''}")
    bad = [f"{k}: {tuple(state_dict[k].shape)} (expected {expected[k]})"
           for k in sorted(expected) if k in state_dict and
           tuple(state_dict[k].shape) != expected[k]]
    if bad:
        problems.append(f"shapes that differ: {'; '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}")
    if problems:
        raise InputError(f"the state_dict does not match the seed's UNet2D with base_channels "
                           f"{base}: " + "; ".join(problems))


def _seed_replica_config(base: int, ny: int, nx: int):
    spec = importlib.util.spec_from_file_location(
        "_kmri_seed_replica", _REPO / "experiments" / "seed_replica.py")
    if spec is None or spec.loader is None or not Path(spec.origin or "").is_file():
        raise InputError(f"experiments/seed_replica.py not found under {_REPO}; run the tool "
                           "from a kmri_jax checkout")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.model.base_channels = base
    config.model.residual = False
    config.data.ny, config.data.nx = ny, nx
    return config


def convert(pt_file: str | os.PathLike[str], output: str | os.PathLike[str], *, ny: int = 424,
            nx: int = 736) -> Path:
    """Convert ``pt_file`` into ``<output>/checkpoints/0``; returns the step folder.

    Raises:
      InputError, TaskError: bad input file or output folder (one message).
    """
    import numpy as np
    from flax import nnx

    from kmri_jax.models import UNet
    from kmri_jax.models.torch_weights import default_key_map, torch_to_nnx_state
    from kmri_jax.tasks import model_io

    pt_file, output = Path(pt_file), Path(output)
    if ny < 8 or nx < 8:
        raise InputError(f"--ny/--nx must be at least 8; got {ny} x {nx}")
    if (output / "checkpoints").is_dir() and any((output / "checkpoints").iterdir()):
        raise InputError(f"{os.fspath(output)!r} already holds checkpoints; choose a new "
                           "--output folder")
    tensors = _load_torch_file(pt_file)
    attr = _block_attr(list(tensors))
    first = tensors[f"enc1.{attr}.0.weight"]
    if first.ndim != 4 or tuple(first.shape[1:]) != (2, 3, 3):
        raise InputError(f"enc1.{attr}.0.weight has shape {tuple(first.shape)}; the seed's "
                           "first convolution is [base_channels, 2, 3, 3]")
    base = int(first.shape[0])
    key_map = default_key_map(block_attr=attr)
    _check(tensors, _expected_torch_shapes(base, key_map), base)
    arrays = {k: v.detach().cpu().float().numpy() for k, v in tensors.items()
              if not k.endswith("num_batches_tracked")}
    bad = sorted(k for k, v in arrays.items() if not np.all(np.isfinite(v)))
    if bad:
        raise InputError(f"non-finite values (NaN/Inf) in {bad[:6]}; the weights are damaged")

    model = nnx.eval_shape(lambda: UNet(rngs=nnx.Rngs(0), base_channels=base))  # no init
    nnx.update(model, torch_to_nnx_state(arrays, model, key_map=key_map))
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    config = _seed_replica_config(base, ny, nx)
    digest = hashlib.sha256(pt_file.read_bytes()).hexdigest()
    created = not output.exists()
    try:
        return model_io.save_model_checkpoint(
            output, config, params, stats,
            metadata={"imported_from": {"file": os.fspath(pt_file.resolve()), "sha256": digest,
                                        "format": "PyTorch UNet2D state_dict (seed)",
                                        "base_channels": base}})
    except BaseException:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Convert the seed's PyTorch UNet2D "
                                "state_dict (unet_best.pt) into a kmri_jax checkpoint.")
    p.add_argument("pt_file", help="the seed's unet_best.pt (a state_dict)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="new workdir; the checkpoint is <DIR>/checkpoints/0")
    p.add_argument("--ny", type=int, default=424, help="training slice rows (seed: 424)")
    p.add_argument("--nx", type=int, default=736, help="training slice columns (seed: 736)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        step_dir = convert(args.pt_file, args.output, ny=args.ny, nx=args.nx)
    except Exception as e:
        if not (isinstance(e, InputError) or type(e).__module__.startswith("kmri_jax.")):
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {step_dir} (seed UNet2D; use --checkpoint {args.output} with "
          "kmri-infer / kmri-evaluate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
