"""Report figures of the map classifier, each judged against the P(k) + moments baseline.

Array-level functions (the caller reads predictions and metrics): every one draws one
Figure on an Agg canvas and writes one PNG atomically (conventions of :mod:`astroflow.plots`:
no pyplot, the Figure is returned for tests and notebooks). Models are passed as
``{name: ...}`` dictionaries, so the CNN and its baseline always share an axes or a row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from astroflow.io import string_attr
from astroflow.plots import DPI, save_png


def plot_roc(
    labels: np.ndarray,
    probabilities_by_model: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    out_png: str | os.PathLike[str],
) -> Figure:
    """ROC curves of every model on the same maps, AUC in the legend, chance diagonal.

    ``labels`` (n,) are true classes, each ``probabilities_by_model[name]`` is (n, K) with
    K = len(class_names). Two classes: one axes, the ROC of class 1 against class 0. More:
    one axes per class, one-vs-rest (the mean of their AUCs is ``roc_auc`` of
    :func:`~astroflow.evaluation.classification.classification_metrics`).
    """
    labels = _check_labels(labels, class_names)
    n_classes = len(class_names)
    if not probabilities_by_model:
        raise ValueError("probabilities_by_model is empty: give at least one model")
    probabilities = {
        name: _check_probabilities(p, f"probabilities_by_model[{name!r}]", len(labels), n_classes)
        for name, p in probabilities_by_model.items()
    }
    positives = [1] if n_classes == 2 else list(range(n_classes))
    fig = Figure(figsize=(4.6 * len(positives), 4.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(positives), squeeze=False)[0]
    for ax, k in zip(axes, positives, strict=True):
        truth = labels == k
        for name, p in probabilities.items():
            if truth.all() or not truth.any():
                ax.plot([], [], label=f"{name} (AUC undefined)")
                continue
            fpr, tpr, _ = roc_curve(truth, p[:, k])
            ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC = {auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel(f"false positive rate (not {class_names[k]})")
        ax.set_ylabel(f"true positive rate ({class_names[k]})")
        ax.set_title(
            f"{class_names[1]} vs {class_names[0]}"
            if n_classes == 2
            else f"{class_names[k]} vs rest"
        )
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"ROC on {len(labels)} test maps")
    save_png(fig, out_png)
    return fig


def plot_confusion(
    confusion_by_model: Mapping[str, Sequence[Sequence[int]]],
    class_names: Sequence[str],
    out_png: str | os.PathLike[str],
) -> Figure:
    """One confusion matrix per model: rows true, columns predicted class.

    Colour and the second line of each cell are the row fraction (the recall of the true
    class), the first line the count; the title gives the accuracy. Matrices are (K, K) with
    K = len(class_names), as ``confusion`` of ``classification_metrics``.
    """
    n_classes = _check_class_names(class_names)
    if not confusion_by_model:
        raise ValueError("confusion_by_model is empty: give at least one model")
    matrices = {}
    for name, matrix in confusion_by_model.items():
        matrix = np.asarray(matrix)
        if matrix.shape != (n_classes, n_classes) or (matrix < 0).any():
            raise ValueError(
                f"confusion_by_model[{name!r}] must be a ({n_classes}, {n_classes}) matrix of "
                f"counts for class_names {list(class_names)}, got shape {matrix.shape}"
            )
        matrices[name] = matrix.astype(np.int64)

    size = 1.1 * n_classes + 2.2
    fig = Figure(figsize=(size * len(matrices), size), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (name, matrix) in zip(axes, matrices.items(), strict=True):
        rows = matrix.sum(axis=1, keepdims=True)
        fractions = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
        image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if fractions[i, j] > 0.6 else "black"
            ax.text(j, i, f"{count}\n{fractions[i, j]:.0%}", ha="center", va="center", color=colour)
        ax.set_xticks(range(n_classes), class_names)
        ax.set_yticks(range(n_classes), class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        total = matrix.sum()
        accuracy = np.trace(matrix) / total if total else float("nan")
        ax.set_title(f"{name}: accuracy {accuracy:.3f}")
    fig.colorbar(image, ax=axes.tolist(), label="fraction of the true class", shrink=0.8)
    save_png(fig, out_png)
    return fig


def plot_confident_maps(
    maps: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    out_png: str | os.PathLike[str],
    per_class: int = 4,
    *,
    channel: int = 0,
) -> Figure:
    """What the classifier is surest and least sure of: one row of maps per true class.

    ``maps`` (n, C, N, N), ``labels`` (n,), ``probabilities`` (n, K). The maps of each true
    class are ranked by the probability given to that class: the left half of the row shows the
    highest (the most confidently right), the right half the lowest (the least confident right
    ones, or the most confidently wrong when there are errors). Each title gives that
    probability, and the predicted class when it is wrong. ``channel`` is shown, all panels on
    one colour scale (1st-99th percentile of the shown maps).
    """
    labels = _check_labels(labels, class_names)
    maps = np.asarray(maps)
    if maps.ndim != 4 or len(maps) != len(labels):
        raise ValueError(
            f"maps must have shape (n, C, N, N) with n = {len(labels)} like labels, "
            f"got {maps.shape}"
        )
    if not 0 <= channel < maps.shape[1]:
        raise ValueError(f"channel must be in [0, {maps.shape[1]}), got {channel}")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    p = _check_probabilities(probabilities, "probabilities", len(labels), len(class_names))
    predicted = p.argmax(axis=1)

    chosen = []  # per class: indices into maps, most confident first
    for k in range(len(class_names)):
        members = np.flatnonzero(labels == k)
        ranked = members[np.argsort(-p[members, k], kind="stable")]
        n_top = min(len(ranked), (per_class + 1) // 2)
        n_bottom = min(len(ranked) - n_top, per_class - (per_class + 1) // 2)
        chosen.append(np.concatenate([ranked[:n_top], ranked[len(ranked) - n_bottom :]]))
    shown = np.concatenate(chosen).astype(np.int64)
    if shown.size == 0:
        raise ValueError("labels select no maps to show")
    vmin, vmax = np.percentile(maps[shown, channel], [1, 99])

    n_rows = len(class_names)
    fig = Figure(figsize=(2.2 * per_class + 1.2, 2.4 * n_rows + 0.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(n_rows, per_class, squeeze=False)
    for k, row in enumerate(chosen):
        for j, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row):
                ax.set_axis_off()
                continue
            i = row[j]
            image = ax.imshow(
                maps[i, channel], cmap="viridis", vmin=vmin, vmax=vmax, origin="lower"
            )
            title = f"p({class_names[k]}) = {p[i, k]:.2f}"
            if predicted[i] != k:
                title += f"\nwrong: {class_names[predicted[i]]}"
            ax.set_title(title, fontsize=8, color="black" if predicted[i] == k else "C3")
        axes[k, 0].set_ylabel(f"true {class_names[k]}")
    fig.colorbar(image, ax=axes.ravel().tolist(), label=f"channel {channel} (standardized)")
    fig.suptitle("Most (left) and least (right) confident maps of each true class")
    save_png(fig, out_png)
    return fig


def _check_class_names(class_names: Sequence[str]) -> int:
    if isinstance(class_names, str) or len(class_names) < 2:
        raise ValueError(f"class_names must list at least two classes, got {class_names!r}")
    return len(class_names)


def _check_labels(labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    n_classes = _check_class_names(class_names)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 1D integer array, got {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"labels must lie in [0, {n_classes}) for class_names {list(class_names)}, "
            f"got {labels.min()}..{labels.max()}"
        )
    return labels


def _check_probabilities(p: np.ndarray, argument: str, n: int, n_classes: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n, n_classes):
        raise ValueError(
            f"{argument} must have shape ({n}, {n_classes}) to match labels and class_names, "
            f"got {p.shape}"
        )
    return p


MODEL_NAMES = ("CNN", "P(k) + moments baseline")
"""How the report names the network and its baseline."""


def draw_roc(predictions_h5: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Figure:
    """:func:`plot_roc` of the CNN and the baseline from a classifier's ``predictions.h5``."""
    with h5py.File(predictions_h5, "r") as h5:
        labels = h5["label"][:]
        network, baseline = h5["probabilities"][:], h5["baseline_probabilities"][:]
        class_names = string_attr(h5, "class_names")
    by_model = dict(zip(MODEL_NAMES, (network, baseline), strict=True))
    return plot_roc(labels, by_model, class_names, out_png)


def draw_confusion(metrics_json: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Figure:
    """:func:`plot_confusion` of the CNN and the baseline from a classifier's ``metrics.json``."""
    metrics = json.loads(Path(metrics_json).read_text())
    n_classes = len(metrics["network"]["confusion"])
    by_model = {
        name: metrics[key]["confusion"]
        for name, key in zip(MODEL_NAMES, ("network", "baseline"), strict=True)
    }
    class_names = metrics.get("class_names", [str(k) for k in range(n_classes)])
    return plot_confusion(by_model, class_names, out_png)


def draw_confident_maps(
    predictions_h5: str | os.PathLike[str], out_png: str | os.PathLike[str]
) -> Figure:
    """:func:`plot_confident_maps` of the example maps kept in ``predictions.h5``."""
    with h5py.File(predictions_h5, "r") as h5:
        rows = h5["example_index"][:]
        maps = h5["example_maps"][:]
        labels = h5["label"][:][rows]
        probabilities = h5["probabilities"][:][rows]
        class_names = string_attr(h5, "class_names")
    return plot_confident_maps(maps, labels, probabilities, class_names, out_png)
