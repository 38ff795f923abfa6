"""The 48 symmetries of the cube (axis permutations and flips) applied to fields with vectors.

Element ``e`` permutes the array axes with ``PERMUTATIONS[e // 8]`` (new axis i is old axis
perm[i]) and then flips new axis i when bit i of ``e % 8`` is set. A scalar field is moved
with the grid; a vector field is moved and its components follow: the component along new
axis i is the old component along axis perm[i], negated if axis i was flipped. Derived
scalars (the divergence of the velocity, say) then transform as scalars, which is what makes
an augmented pair a valid pair. Element 0 is the identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

PERMUTATIONS: tuple[tuple[int, int, int], ...] = tuple(itertools.permutations(range(3)))
N_SYMMETRIES = 48


def apply_symmetry(field: torch.Tensor, element: int, vector: Sequence[int] = ()) -> torch.Tensor:
    """``field`` (C, D, H, W) moved by cube symmetry ``element``; ``vector`` lists the channels
    of the vector components along axes (z, y, x) (empty: every channel is a scalar)."""
    if not 0 <= element < N_SYMMETRIES:
        raise ValueError(f"symmetry element must be in [0, {N_SYMMETRIES}), got {element}")
    if element == 0:
        return field
    perm = PERMUTATIONS[element // 8]
    flips = [axis for axis in range(3) if (element % 8) >> axis & 1]
    out = field.permute(0, *(1 + p for p in perm))
    if flips:
        out = out.flip([1 + axis for axis in flips])
    if vector:
        channels = list(range(field.shape[0]))
        for axis in range(3):
            channels[vector[axis]] = vector[perm[axis]]
        signs = torch.ones(field.shape[0], dtype=field.dtype)
        for axis in flips:
            signs[vector[axis]] = -1
        out = out[channels] * signs.view(-1, 1, 1, 1)
    return out.contiguous()
