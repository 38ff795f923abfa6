"""Sweeps: the table collects each member's metrics by dotted path, in the sweep's order, and
the figure plots every metric against the sorted swept value with the family's reference."""

import json

import numpy as np
import pytest

from astroflow.plots import plot_sweep
from astroflow.sweep import sweep_table, write_sweep

SWEEP = {"key": "strength", "values": [2.0, 0.0, 1.0], "experiments": ["s2", "s0", "s1"]}


def write_metrics(tmp_path, accuracies):
    paths = []
    for name, (cnn, baseline) in zip(SWEEP["experiments"], accuracies, strict=True):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps({"network": {"accuracy": cnn}, "baseline": {"accuracy": baseline}})
        )
        paths.append(path)
    return paths


def test_table_and_figure_of_a_classifier_sweep(tmp_path):
    paths = write_metrics(tmp_path, [(0.99, 0.5), (0.5, 0.49), (0.9, 0.51)])
    table = write_sweep(SWEEP, "classifier", paths, tmp_path / "sweep.json", tmp_path / "s.png")
    assert json.loads((tmp_path / "sweep.json").read_text()) == table
    assert table["metrics"]["CNN test accuracy"] == [0.99, 0.5, 0.9]
    assert table["metrics"]["P(k) + moments baseline"] == [0.5, 0.49, 0.51]
    fig = plot_sweep(table, tmp_path / "again.png", reference=("chance", 0.5))
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["CNN test accuracy"].get_xdata(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(lines["CNN test accuracy"].get_ydata(), [0.5, 0.9, 0.99])
    assert lines["chance"].get_ydata()[0] == 0.5
    assert ax.get_xlabel() == "strength"


def test_a_missing_metric_names_the_file_and_key(tmp_path):
    paths = write_metrics(tmp_path, [(0.9, 0.5)] * 3)
    paths[1].write_text(json.dumps({"network": {}}))
    with pytest.raises(KeyError, match=r"s0.json: key 'network.accuracy' missing"):
        sweep_table(SWEEP, {"cnn": "network.accuracy"}, paths)
    with pytest.raises(ValueError, match="2 metrics files for the 3 experiments"):
        sweep_table(SWEEP, {"cnn": "network.accuracy"}, paths[:2])
