"""Report figures of an srgan3d experiment: spectra and PDFs from ``superres.json``, and
slices of the first test volume."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

STYLES = {
    "output": {"color": "tab:blue", "label": "srgan3d"},
    "trilinear": {"color": "tab:orange", "ls": "--", "label": "trilinear"},
    "tricubic": {"color": "tab:green", "ls": "--", "label": "tricubic"},
    "spectral": {"color": "tab:purple", "ls": ":", "label": "spectral (FFT)"},
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_power_spectra(superres_json: str | os.PathLike[str], output: str) -> None:
    """P(k), P/P_true and r(k) per channel (columns)."""
    from matplotlib.ticker import NullFormatter

    plt = _pyplot()
    data = json.loads(Path(superres_json).read_text())
    channels = data["channels"]
    fig, axes = plt.subplots(3, len(channels), figsize=(3.6 * len(channels), 8), squeeze=False)
    for col, (name, ch) in enumerate(channels.items()):
        k = np.asarray(ch["k"])
        truth = np.asarray(ch["power_truth"])
        small = np.asarray(ch["small_scales"])
        top, mid, bottom = axes[:, col]
        top.loglog(k, truth, color="k", label="truth")
        for key, power in ch["power"].items():
            style = STYLES.get(key, {"label": key})  # superres.json of older runs lack some
            top.loglog(k, power, **style)
            mid.semilogx(k, np.asarray(power) / truth, **style)
            bottom.semilogx(k, ch["r"][key], **style)
        mid.axhspan(0.9, 1.1, color="0.85")
        if small.any():
            mid.axvspan(k[small].min(), k[small].max(), color="tab:blue", alpha=0.08)
        mid.set_ylim(0, 1.5)
        bottom.set_ylim(-0.1, 1.05)
        bottom.axhline(0.9, color="0.5", lw=0.8)
        for ax in (top, mid, bottom):
            ax.axvline(data["k_lr_nyquist"], color="k", ls=":", lw=0.8)
            ax.xaxis.set_minor_formatter(NullFormatter())
        score = ch["scores"]["output"]["power_error_small_scales"]
        top.set_title(f"{name}: small-scale |ΔP/P| {score:.2f}" if score is not None else name)
        top.set_ylabel("P(k) [(Mpc/h)^3]" if col == 0 else None)
        mid.set_ylabel("P / P_true" if col == 0 else None)
        bottom.set(xlabel="k [h/Mpc]", ylabel="r(k)" if col == 0 else None)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def plot_pdfs(superres_json: str | os.PathLike[str], output: str) -> None:
    """One-point PDFs per channel: truth, output, trilinear."""
    plt = _pyplot()
    channels = json.loads(Path(superres_json).read_text())["channels"]
    fig, axes = plt.subplots(1, len(channels), figsize=(3.6 * len(channels), 3.2), squeeze=False)
    for ax, (name, ch) in zip(axes[0], channels.items(), strict=True):
        pdf = ch["pdf"]
        centres = 0.5 * (np.asarray(pdf["edges"][1:]) + np.asarray(pdf["edges"][:-1]))
        ax.semilogy(centres, pdf["truth"], color="k", label="truth")
        for key in ("output", "trilinear"):
            ax.semilogy(centres, pdf[key], **STYLES[key])
        unit = "log10 " + name if name == "density" else f"{name} [{ch['unit']}]"
        ax.set(xlabel=unit, ylabel="PDF")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def plot_slices(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    output: str,
) -> None:
    """Input, trilinear, output and truth slices of the first test volume, one row per channel
    with one colour scale (log10 for densities)."""
    from astroflow.families.srgan3d.inference import superresolve, trilinear
    from astroflow.modelfile import load_model
    from astroflow.volumes.scaling import VolumeScaling
    from astroflow.volumes.shards import is_density, read_volume_shard

    plt = _pyplot()
    generator, meta = load_model(model_path, "cpu")
    scaling = VolumeScaling.from_dict(meta["normalization"])
    shard = read_volume_shard(shard_paths[0])
    lr, hr, f = shard.lr[0], shard.hr[0], shard.factor
    out = scaling.inverse(
        superresolve(
            generator,
            scaling.forward(lr),
            tile=meta["settings"]["crop"],
            seed=0,
            keep_resolved=meta["settings"].get("keep_resolved", False),
        )
    )
    up = trilinear(lr, f)
    panels = {"input": lr, "trilinear": up, "srgan3d": out, "truth": hr}
    fig, axes = plt.subplots(len(shard.channels), 4, figsize=(11, 2.8 * len(shard.channels)))
    axes = np.atleast_2d(axes)
    mid = hr.shape[-1] // 2
    for row, name in enumerate(shard.channels):
        slices = {key: v[row, (mid // f) if key == "input" else mid] for key, v in panels.items()}
        if is_density(name):
            slices = {key: np.log10(v) for key, v in slices.items()}
        lo, hi = np.percentile(slices["truth"], [1, 99])
        for col, (key, image) in enumerate(slices.items()):
            shown = axes[row, col].imshow(image, origin="lower", vmin=lo, vmax=hi, cmap="magma")
            axes[row, col].set_title(f"{key}: {'log10 ' if is_density(name) else ''}{name}")
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        fig.colorbar(shown, ax=axes[row, -1], shrink=0.8)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
