"""Where a network runs and in which precision: CUDA when present, the CPU otherwise.

The same training and inference code runs on a laptop and on a GPU node; everything that
differs between the two is decided here, in small functions the training loop calls by name:
the device, bf16 autocast (CUDA only: on the CPU it is slower than float32 for these small
convolutions) and the channels-last memory layout (fast on tensor cores, slow on CPU).
"""

from __future__ import annotations

import contextlib

import torch


def select_device(requested: str | None = None) -> torch.device:
    """Return the device to compute on.

    ``None`` or ``"auto"`` picks ``cuda`` when a GPU is visible and ``cpu`` otherwise; an explicit
    name (``"cpu"``, ``"cuda"``, ``"cuda:1"``) is honoured, and asking for CUDA on a machine
    without it is an error rather than a silent, hundred times slower CPU run.
    """
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available here")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``device``: bfloat16 on CUDA GPUs that support it, else None.

    bf16 has the float32 exponent range, so no loss scaling is needed; the moment loss takes
    logarithms of small mean squares and is computed in float32 outside autocast anyway.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Context for the forward pass: bf16 autocast where :func:`autocast_dtype` allows it."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA (the cuDNN fast path for convolutions), contiguous elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device`` in the memory layout the device prefers."""
    return model.to(device=device, memory_format=memory_format(device))


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch of maps (B, C, N, N) to ``device`` in the layout the model expects."""
    return x.to(device=device, memory_format=memory_format(device), non_blocking=True)
