"""TensorBoard images of a validation pass: slices side by side and the P(k) ratio curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def slice_image(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """Middle z-slices of same-shaped volumes (N, N, N) side by side, on one shared scale in
    [0, 1] (percentiles 1-99 of all of them): (N, len(volumes) N)."""
    slices = [np.asarray(v)[v.shape[0] // 2] for v in volumes]
    lo, hi = np.percentile(np.concatenate([s.ravel() for s in slices]), [1, 99])
    image = np.concatenate(slices, axis=1)
    return np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)


def ratio_image(report: dict[str, Any], candidate: str = "output") -> np.ndarray:
    """P_candidate / P_truth against k for every channel, drawn as a grey image in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    for name, channel in report.items():
        ratio = np.asarray(channel["power"][candidate]) / np.asarray(channel["power_truth"])
        ax.plot(channel["k"], ratio, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="k [h/Mpc]", ylabel="P_out / P_true")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32)[..., :3] / 255.0
    plt.close(fig)
    return rgba.mean(axis=-1)
