"""Classifier figures: PNGs of the announced size, the right curves and panels, clear errors."""

import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import AxesImage

from astroflow.evaluation.classification import classification_metrics
from astroflow.families.classifier.figures import (
    plot_confident_maps,
    plot_confusion,
    plot_roc,
)
from astroflow.plots import DPI

CLASSES = ["map", "counterpart"]


def assert_png_of(path: Path, fig) -> None:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = fig.get_size_inches() * DPI
    assert struct.unpack(">II", head[16:24]) == (round(width), round(height))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def binary_case(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    good = np.clip(0.5 + (labels - 0.5) * 0.8 + rng.normal(0, 0.15, n), 0, 1)
    noise = rng.uniform(size=n)
    return labels, {
        "cnn": np.stack([1 - good, good], axis=1),
        "baseline": np.stack([1 - noise, noise], axis=1),
    }


def test_roc_curves_and_auc_in_legend(tmp_path):
    labels, probabilities = binary_case()
    out = tmp_path / "figures" / "roc.png"
    fig = plot_roc(labels, probabilities, CLASSES, out)
    assert_png_of(out, fig)
    (ax,) = fig.axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, p in probabilities.items():
        auc = classification_metrics(p, labels)["roc_auc"]
        assert f"{name} (AUC = {auc:.3f})" in legend
    assert "chance" in legend
    chance = [line for line in ax.get_lines() if line.get_label() == "chance"][0]
    np.testing.assert_array_equal(chance.get_xydata(), [[0, 0], [1, 1]])


def test_roc_one_panel_per_class_beyond_two(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.arange(30) % 3
    out = tmp_path / "roc3.png"
    fig = plot_roc(labels, {"cnn": rng.dirichlet(np.ones(3), size=30)}, ["a", "b", "c"], out)
    assert_png_of(out, fig)
    assert [ax.get_title() for ax in fig.axes] == ["a vs rest", "b vs rest", "c vs rest"]


def test_confusion_counts_and_fractions(tmp_path):
    out = tmp_path / "confusion.png"
    fig = plot_confusion({"cnn": [[18, 2], [1, 19]], "baseline": [[10, 10], [12, 8]]}, CLASSES, out)
    assert_png_of(out, fig)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == [
        "cnn: accuracy 0.925",
        "baseline: accuracy 0.450",
    ]
    texts = [t.get_text() for t in panels[0].texts]
    assert texts == ["18\n90%", "2\n10%", "1\n5%", "19\n95%"]
    np.testing.assert_allclose(panels[1].get_images()[0].get_array(), [[0.5, 0.5], [0.6, 0.4]])


def test_confident_maps_rank_by_probability_of_the_true_class(tmp_path):
    n, size = 10, 8
    labels = np.array([0] * 5 + [1] * 5)
    p1 = np.array([0.1, 0.2, 0.9, 0.4, 0.05, 0.95, 0.6, 0.3, 0.8, 0.99])
    maps = np.zeros((n, 2, size, size))
    maps[:, 1, 0, 0] = np.arange(n)  # channel 1 tags each map with its index
    out = tmp_path / "confident.png"
    fig = plot_confident_maps(
        maps, labels, np.stack([1 - p1, p1], 1), CLASSES, out, per_class=4, channel=1
    )
    assert_png_of(out, fig)
    panels = [ax for ax in fig.axes if any(isinstance(a, AxesImage) for a in ax.get_children())]
    shown = [int(ax.get_images()[0].get_array()[0, 0]) for ax in panels]
    # Class 0 by p(map): 4 (0.95), 0 (0.9), ..., 3 (0.6), 2 (0.1); class 1 by p(counterpart).
    assert shown == [4, 0, 3, 2, 9, 5, 6, 7]
    assert panels[3].get_title() == "p(map) = 0.10\nwrong: counterpart"
    assert panels[4].get_title() == "p(counterpart) = 0.99"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda out: plot_roc(np.array([0, 1, 1]), {"cnn": np.full((2, 2), 0.5)}, CLASSES, out),
            r"probabilities_by_model\['cnn'\] must have shape \(3, 2\)",
        ),
        (
            lambda out: plot_roc(np.array([0, 2]), {"cnn": np.full((2, 2), 0.5)}, CLASSES, out),
            "labels must lie",
        ),
        (
            lambda out: plot_confusion({"cnn": [[1, 2, 3]]}, CLASSES, out),
            r"confusion_by_model\['cnn'\] must be a \(2, 2\)",
        ),
        (
            lambda out: plot_confident_maps(
                np.zeros((3, 1, 4, 4)), np.array([0, 1]), np.full((2, 2), 0.5), CLASSES, out
            ),
            "maps must have shape",
        ),
        (
            lambda out: plot_confident_maps(
                np.zeros((2, 1, 4, 4)), np.array([0, 1]), np.full((3, 2), 0.5), CLASSES, out
            ),
            "probabilities must have shape",
        ),
    ],
)
def test_bad_input_names_the_argument_and_writes_nothing(tmp_path, call, match):
    out = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=match):
        call(out)
    assert not out.exists()
