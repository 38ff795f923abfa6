"""Every random generator a training step can draw from: seeded, captured, restored.

A resumed run is bitwise equal to an uninterrupted one only if every generator continues where
it stopped. The data order and augmentation do not draw from these generators at all (they are
planned per epoch by :mod:`astroflow.engine.batches`); what remains is dropout and any library
code using the global Python, NumPy or torch generators. A captured state holds only plain
data and tensors, so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (experiment seed, rank, epoch, ...), well mixed.

    NumPy's SeedSequence hashes the parts, so neighbouring inputs (seed 1 rank 1, seed 2 rank
    0) give unrelated streams, unlike ``seed + rank``.
    """
    entropy = [part % 2**64 for part in parts]  # SeedSequence takes non-negative integers
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer.

    astroflow itself draws only from torch generators; the global Python and NumPy generators
    are seeded for any library code that uses them.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what such code uses
    torch.manual_seed(seed)


def capture() -> dict[str, Any]:
    """The state of the Python, NumPy, torch CPU and CUDA generators of this process."""
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore(state: dict[str, Any]) -> None:
    """Put the generators back to a state from :func:`capture` (of the same kind of node)."""
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {
        **numpy_state["state"],
        "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
    }
    np.random.set_state(numpy_state)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
