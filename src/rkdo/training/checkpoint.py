"""``checkpoint.pt``: written only with finite state, read back with one-line errors.

A checkpoint is ``torch.save`` of a dict (see :mod:`.rundir` for its keys), serialised in memory
and then written atomically (:func:`rkdo._io.atomic_writer`), so a full disk is an ``OSError``
naming the file and leaves no ``.tmp`` behind. It is read with torch's safe loader
(``weights_only=True``): a payload that would run code is refused, never executed. Every way a
file can be wrong (empty, truncated, foreign, not fitting ``config.json``) is a ``ValueError``
that names the file and says what to do.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rkdo._io import atomic_writer

__all__ = ["CHECKPOINT_KEYS", "save_state", "load_state", "first_nonfinite", "load_weights"]

CHECKPOINT_KEYS = ("model", "loss", "optimizer", "scheduler", "rng", "step", "evals_done",
                   "epoch_loss", "epoch_steps")


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` with ``state`` atomically (fsynced)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_writer(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))
    except OSError as error:
        # a failed write() names no file; say which one could not be written
        raise OSError(error.errno, error.strerror, str(path)) from None


def load_state(path: Path, device: torch.device, keys: tuple[str, ...] = CHECKPOINT_KEYS
               ) -> dict[str, Any]:
    """The checkpoint in ``path`` with its tensors on ``device``, checked to hold ``keys``."""
    restart = "remove it and start the run again with --overwrite"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice on foreign pickles is not for users
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():
            raise ValueError(
                f"{path} holds objects that the safe loader refuses to run, so it was not "
                f"written by `rkdo train`; {restart}") from None
        raise ValueError(f"{path} is not a checkpoint (damaged or foreign); {restart}") from None
    except (RuntimeError, EOFError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise ValueError(
            f"{path} cannot be read, it is truncated or damaged ({reason}); {restart}") from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path} is not an rkdo checkpoint (missing {', '.join(missing)}); "
                         f"{restart}")
    return state


def _floats(prefix: str, value: Any) -> Iterator[tuple[str, Tensor]]:
    """The floating-point tensors in a (nested) state, with dotted names."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(f"{prefix}.{key}" if prefix else str(key), item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _floats(f"{prefix}.{index}", item)


def first_nonfinite(state: dict[str, Any]) -> str | None:
    """The name of the first tensor of ``state`` holding a NaN or an infinity, or ``None``.

    One host sync when everything is finite (the common case).
    """
    named = list(_floats("", state))
    if not named:
        return None
    if bool(torch.stack([torch.isfinite(tensor).all() for _, tensor in named]).all()):
        return None
    return next(name for name, tensor in named if not bool(torch.isfinite(tensor).all()))


def load_weights(module: nn.Module | torch.optim.Optimizer, state: dict[str, Any], path: Path,
                 config_path: Path) -> None:
    """``module.load_state_dict(state)``, or a one-line error when ``state`` does not fit it."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(error).__name__)
        raise ValueError(
            f"{path} does not fit the model that {config_path} describes ({detail[:200]}); was "
            f"{config_path.name} edited after training? Restore it, or start a new run") from None
