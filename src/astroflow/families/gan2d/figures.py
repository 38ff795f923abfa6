"""Report figures of a gan2d experiment: maps, and the emulator validation's curves.

All are drawn from ``emulator.json`` (:mod:`astroflow.families.gan2d.evaluation`), the
example maps included, so that no figure needs torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from astroflow.evaluation.fields import well_sampled
from astroflow.evaluation.regression import r2_score
from astroflow.plots import field_cmap, param_label, save_png

COLOURS = {"gan": "C0", "floor": "0.5", "baseline": "C3"}
LABELS = {"gan": "GAN", "floor": "noise floor", "baseline": "two-point baseline"}


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path) as stream:
        return json.load(stream)


def _log_k_axis(ax) -> None:
    """Log k axis labelled at the decades only (minor labels overlap on a short range)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$k$ ($h$/Mpc)")


def draw_maps(inputs: Sequence[str], output: str) -> None:
    """Real and generated maps of the test simulations that ``emulator.json`` keeps."""
    result = _read(inputs[0])
    examples, fields = result["examples"], result["fields"]
    n_fields, n_sims = len(fields), len(examples["sim_id"])
    fig = Figure(figsize=(2.0 * n_fields * n_sims, 4.4), layout="constrained")
    axes = fig.subplots(2, n_fields * n_sims, squeeze=False)
    for s, sim in enumerate(examples["sim_id"]):
        real, fake = np.array(examples["real"][s]), np.array(examples["gan"][s])
        for f, field in enumerate(fields):
            column = s * n_fields + f
            lo, hi = np.percentile(real[f], [0.5, 99.5])
            for row, image in enumerate((real[f], fake[f])):
                ax = axes[row, column]
                ax.imshow(image, cmap=field_cmap(field), vmin=lo, vmax=hi)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[0, column].set_title(f"{field}, sim {sim}", fontsize=8)
    axes[0, 0].set_ylabel("real")
    axes[1, 0].set_ylabel("generated")
    save_png(fig, output)


def draw_pk_ratios(inputs: Sequence[str], output: str) -> None:
    result = _read(inputs[0])
    curves, fields = result["curves"], result["fields"]
    k = np.array(curves["k"])
    good = well_sampled(np.array(curves["n_modes"]))
    fig = Figure(figsize=(4 * len(fields), 3.4), layout="constrained")
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    for f, (ax, field) in enumerate(zip(axes, fields, strict=True)):
        for name in ("floor", "gan", "baseline"):
            lo, mid, hi = (np.array(c)[f] for c in curves[f"ratio_{name}"])
            style = "--" if name == "baseline" else "-"
            ax.plot(k[good], mid[good], style, color=COLOURS[name], label=LABELS[name])
            ax.plot(k[~good], mid[~good], ":", color=COLOURS[name])
            if name != "baseline":
                ax.fill_between(k, lo, hi, color=COLOURS[name], alpha=0.25, lw=0)
        ax.axhline(1.0, color="k", lw=0.5)
        _log_k_axis(ax)
        ax.set_title(field)
    axes[0].set_ylabel(r"$P_{\rm test}(k) / P_{\rm real}(k)$")
    axes[0].legend(fontsize=8)
    save_png(fig, output)


def draw_pdfs(inputs: Sequence[str], output: str) -> None:
    result = _read(inputs[0])
    fields = result["fields"]
    fig = Figure(figsize=(4 * len(fields), 3.2), layout="constrained")
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    for ax, field in zip(axes, fields, strict=True):
        pdf = result["pdf"][field]
        w1 = result["summary"]["fields"][field]["pdf"]
        for name, colour in (("real", "k"), ("gan", COLOURS["gan"])):
            ax.stairs(pdf[name], pdf["edges"], color=colour, label=name)
        ax.set_yscale("log")
        ax.set_xlabel(f"log10 {field}")
        ax.set_title(f"{field}: W1 {w1['gan']:.3f} (floor {w1['floor']:.3f}) dex", fontsize=9)
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    save_png(fig, output)


def draw_cross_correlation(inputs: Sequence[str], output: str) -> None:
    result = _read(inputs[0])
    curves, pairs = result["curves"], result["pairs"]
    k = np.array(curves["k"])
    fig = Figure(figsize=(4 * max(len(pairs), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(pairs), 1), squeeze=False)[0]
    for j, (ax, pair) in enumerate(zip(axes, pairs, strict=False)):
        ax.plot(k, np.array(curves["r_real"])[j], color="k", label="real")
        ax.plot(k, np.array(curves["r_gan"])[j], color=COLOURS["gan"], label=LABELS["gan"])
        ax.plot(
            k,
            np.array(curves["r_baseline"])[j],
            "--",
            color=COLOURS["baseline"],
            label=LABELS["baseline"],
        )
        dr = result["summary"]["pairs"][pair]["correlation"]
        ax.set_title(f"{pair}: |dr| {dr['gan']:.3f} (floor {dr['floor']:.3f})", fontsize=9)
        _log_k_axis(ax)
    axes[0].set_ylabel("r(k)")
    axes[0].legend(fontsize=8)
    save_png(fig, output)


def draw_recovery(inputs: Sequence[str], output: str) -> None:
    recovery = _read(inputs[0])["recovery"]
    names = recovery["names"]
    truth = np.array(recovery["truth"])
    fig = Figure(figsize=(3.2 * len(names), 3.2), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        for kind, colour in (("real", "k"), ("gan", COLOURS["gan"])):
            predicted = np.array(recovery[f"predicted_{kind}"])[:, j]
            r2 = r2_score(truth[:, j], predicted)
            label = f"{kind}: R² {r2:.2f}" if r2 is not None else kind
            ax.scatter(truth[:, j], predicted, s=3, alpha=0.4, color=colour, label=label)
        lo, hi = truth[:, j].min(), truth[:, j].max()
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
        ax.set_xlabel(f"true {param_label(name)}")
        ax.legend(fontsize=7, markerscale=3)
    axes[0].set_ylabel("inferred by cnn2d")
    save_png(fig, output)
