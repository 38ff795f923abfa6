"""Model files: the trained network of an experiment as plain data, and its safe reload.

A model file (``model.pt``) is a dict of tensors and builtins, so it loads with
``torch.load(weights_only=True)``: ``format_version``, ``model`` (the family's registry name),
``arch`` (the network's constructor arguments), ``state_dict``, ``fields``, ``params``,
``settings`` and whatever the family adds (normalization, class names, the core configuration).
No code travels in the file: :func:`load_model` asks the family to rebuild its network from
``arch``, then loads the weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from astroflow.device import prepare_model, select_device
from astroflow.families import get_family
from astroflow.io import atomic_path

MODEL_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "arch", "state_dict", "fields", "params", "settings")


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and the missing or bad key."""


def save_model(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write a model file atomically: ``meta`` (plain data) plus ``state_dict`` (tensors).

    ``meta`` must hold ``model``, ``arch``, ``fields``, ``params`` and ``settings``.
    """
    payload = {"format_version": MODEL_FORMAT_VERSION, **meta, "state_dict": dict(state_dict)}
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"model metadata for {path} lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device | None = "cpu",
    *,
    settings: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved in ``path`` on ``device``, in eval mode; return (model, meta).

    ``meta`` is the file's content without the weights. A missing file, a file that is not a
    weights-only torch file, a missing key, an unknown family or weights that do not fit the
    architecture raise one error naming the file and the key. With ``settings`` (those the
    workflow trains the experiment with), a file trained with other settings (another
    experiment's model copied in its place, say) is refused, naming the first that differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for foreign or unsafe files; its message
        # suggests unsafe loading, which must not reach a user
        raise ModelFileError(
            f"{path}: not a model file written by astroflow (it does not load as plain tensors "
            "and data); run the experiment's training again to replace it"
        ) from None
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path}: expected a dict, found {type(payload).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ModelFileError(f"{path}: key '{missing[0]}' missing (have {sorted(payload)})")
    if payload["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: key 'format_version' is {payload['format_version']}, "
            f"this astroflow reads {MODEL_FORMAT_VERSION}"
        )
    try:
        model = get_family(payload["model"]).build_network(payload["arch"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: keys 'model'/'arch' do not build a network ({err})") from err
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ModelFileError(
            f"{path}: key 'state_dict' does not fit {payload['model']}: {err}"
        ) from err
    if settings is not None:
        check_settings(path, payload["settings"], settings)
    device = select_device(None if device is None else str(device))
    model = prepare_model(model, device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta


def check_settings(
    path: str | os.PathLike[str], saved: Mapping[str, Any], expected: Mapping[str, Any]
) -> None:
    """The model file at ``path`` was trained with the ``expected`` experiment settings."""
    for key in sorted(expected):
        if key not in saved or _plain(saved[key]) != _plain(expected[key]):
            raise ModelFileError(
                f"{path}: trained with {key}={saved.get(key, '<unset>')!r}, but the experiment "
                f"says {key}={expected[key]!r}: the model file of another experiment or of "
                "older settings; run the experiment's training again to replace it"
            )


def _plain(value: Any) -> Any:
    # Tuples and lists compare equal: the file stores lists, a config may give either.
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value
