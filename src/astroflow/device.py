"""Where a network runs and in which precision: CUDA when present, the CPU otherwise.

The same training and inference code runs on a laptop and on a GPU node; everything that
differs between the two is decided here, in small functions the training loop calls by name.
On the CPU the choices follow measurements of cnn2d training steps (benchmarks/
train_throughput.py, one thread, an AMD EPYC with AVX512-BF16):

- autocast to bfloat16 on GPUs that support it, float16 with loss scaling on older GPUs, and
  bfloat16 on CPUs with native bf16 instructions (AVX512-BF16 or AMX): 1.2x (32x32 maps),
  1.6x (64x64) and 2.6x (128x128) faster than float32, with the same test accuracy of the
  trained network (R^2 of Omega_m and sigma_8 on held-out simulations, three seeds); float32
  on other CPUs, which only emulate bf16;
- channels-last memory layout on CUDA (the cuDNN fast path for convolutions). On the CPU it
  was slower than the contiguous layout in every case measured (10-30% in float32, 30-45%
  in bfloat16) for these circular-padded convolutions, so the CPU keeps the contiguous layout.

Autocast applies to training steps only: predictions, embeddings and validation losses are
products and are computed in float32 (:func:`astroflow.evaluation.outputs.collect_outputs`).
"""

from __future__ import annotations

import contextlib

import torch

PRECISION_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Mixed-precision dtype for ``device`` (None: float32 throughout).

    ``precision`` "float32", "bfloat16" or "float16" is taken as given; "auto" chooses as the
    module docstring says. bf16 has the float32 exponent range, so it needs no loss scaling;
    the moment loss takes logarithms of small mean squares and is computed in float32 outside
    autocast anyway.
    """
    if precision != "auto":
        if precision not in PRECISION_DTYPES:
            raise ValueError(f"precision must be auto or one of {list(PRECISION_DTYPES)}")
        return PRECISION_DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Context for the forward pass: autocast to :func:`autocast_dtype`, if any."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str = "auto") -> torch.amp.GradScaler:
    """Loss scaler for the backward pass: active only for float16, whose small exponent range
    would flush small gradients to zero; a pass-through otherwise (one code path for all)."""
    enabled = autocast_dtype(device, precision) is torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA, contiguous on the CPU (see the module docstring)."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device`` in the memory layout the device prefers.

    Channels-last exists for 4D tensors only: a network with 3D convolutions (5D weights,
    cnn3d) keeps the default layout, which ``Module.to`` would otherwise refuse on CUDA.
    """
    layout = memory_format(device)
    if any(p.dim() == 5 for p in model.parameters()):
        layout = torch.contiguous_format
    return model.to(device=device, memory_format=layout)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch of maps (B, C, N, N) to ``device`` in the layout the model expects.

    The copy is asynchronous from pinned memory (the training loader pins on CUDA).
    """
    return x.to(device=device, memory_format=memory_format(device), non_blocking=True)
