"""A network's outputs over a whole dataset, in float32 and dataset order.

Validation, predictions and embeddings all need them; computing them in one place keeps the
three consistent (same order, same precision, eval mode).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from astroflow.device import to_device
from astroflow.engine.batches import eval_loader


def as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Network outputs as a tuple, whether the network returns one tensor or several."""
    return out if isinstance(out, tuple) else (out,)


@torch.no_grad()
def collect_outputs(
    model: nn.Module, loader: DataLoader, device: torch.device, method: str = "forward"
) -> tuple[np.ndarray, ...]:
    """Run ``model.<method>`` in eval mode over ``loader`` (unshuffled); stack outputs float32.

    Returns one array per output of the method (``forward``: cnn2d mean (n, P) and std
    (n, P), cnn3d profiles (n, 2 nb, ny, nx), classifier logits (n, K); ``features``:
    embeddings (n, D)), in dataset order. Computed in float32 whatever the training precision:
    these outputs are products (predictions, embeddings, the validation loss that picks the
    saved epoch), and bf16 would round them to three significant digits.
    """
    model.eval()
    fn = getattr(model, method)
    chunks: list[list[np.ndarray]] = []
    for x, _, _ in loader:
        out = as_tuple(fn(to_device(x, device)))
        if not chunks:
            chunks = [[] for _ in out]
        for store, tensor in zip(chunks, out, strict=True):
            store.append(tensor.float().cpu().numpy())
    return tuple(np.concatenate(store) for store in chunks)


def dataset_outputs(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    method: str = "forward",
) -> tuple[np.ndarray, ...]:
    """:func:`collect_outputs` over a whole ``dataset``, read in order in batches: what every
    family's predictions and embeddings start from."""
    loader = eval_loader(dataset, batch_size, device, num_workers)
    return collect_outputs(model, loader, device, method)
