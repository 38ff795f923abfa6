"""vicreg figures: example maps of every cluster, and the embedding's evolution in one frame."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from matplotlib.figure import Figure

from astroflow.io import string_attr
from astroflow.maps.dataset import ShardDataset
from astroflow.plots import DPI, field_cmap, param_label, save_png

GALLERY_COLUMNS = 6


def plot_cluster_gallery(
    clusters_json: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    seed: int = 0,
) -> Figure:
    """One row per cluster: :data:`GALLERY_COLUMNS` test maps of the first field drawn at
    random from it, titled with the cluster's size and median Omega_m and sigma_8.

    The labels of ``clusters.json`` follow the rows of the test shards (the embeddings are
    written in shard order); a count mismatch means the files come from different runs.
    """
    labels = np.asarray(json.loads(Path(clusters_json).read_text())["labels"], dtype=np.int64)
    fields = shard_fields(shard_paths[0])
    dataset = ShardDataset(shard_paths, fields[:1], [], in_memory=True)
    if len(dataset) != len(labels):
        raise ValueError(
            f"{clusters_json} has {len(labels)} labels, the test shards {len(dataset)} maps"
        )
    rng = np.random.default_rng(seed)
    n_clusters = int(labels.max()) + 1
    fig = Figure(
        figsize=(1.6 * GALLERY_COLUMNS + 2.5, 1.7 * n_clusters), dpi=DPI, layout="constrained"
    )
    axes = fig.subplots(n_clusters, GALLERY_COLUMNS, squeeze=False)
    names = dataset.param_names
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(members, size=min(GALLERY_COLUMNS, len(members)), replace=False)
        maps = dataset[sorted(chosen.tolist())].x[:, 0].numpy() if len(chosen) else []
        medians = np.median(dataset.params_raw[members], axis=0)
        summary = ", ".join(
            f"{param_label(p)} {medians[names.index(p)]:.2f}" for p in ("Omega_m", "sigma_8")
        )
        for k, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(maps):
                ax.imshow(maps[k], cmap=field_cmap(fields[0]), origin="lower")
        axes[c, 0].set_ylabel(f"cluster {c}\n{len(members)} maps\n{summary}", fontsize=8)
    fig.suptitle(f"{fields[0]} maps of every cluster (standardized log values)")
    save_png(fig, out_png)
    return fig


def shard_fields(path: str | os.PathLike[str]) -> list[str]:
    """The ``fields`` attribute of a shard."""
    with h5py.File(path, "r") as h5:
        return string_attr(h5, "fields")


def plot_evolution(
    evolution_json: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    colour_by: Sequence[str],
) -> Figure:
    """One panel per stage of ``evolution.json`` (snapshot epochs, then the saved model), all
    on the same axes, coloured by the first parameter of ``colour_by``."""
    evolution = json.loads(Path(evolution_json).read_text())
    stages = [np.asarray(xy) for xy in evolution["xy"]]
    titles = [f"epoch {e}" for e in evolution["epochs"]] + [
        f"saved model (epoch {evolution['final_epoch']})"
    ]
    name = colour_by[0]
    values = np.asarray(evolution["params"][name])
    fig = Figure(figsize=(4.2 * len(stages) + 1, 4.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(stages), sharex=True, sharey=True, squeeze=False)[0]
    for ax, xy, title in zip(axes, stages, titles, strict=True):
        points = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=6, cmap="viridis", lw=0)
        ax.set_title(title)
        ax.set_xlabel("t-SNE 1 (arbitrary units)")
    axes[0].set_ylabel("t-SNE 2 (arbitrary units)")
    fig.colorbar(points, ax=axes[-1], label=param_label(name))
    if evolution["missing_epochs"]:
        fig.suptitle(
            f"snapshots of epochs {evolution['missing_epochs']} come after the saved epoch "
            "and are not in the model file"
        )
    save_png(fig, out_png)
    return fig
