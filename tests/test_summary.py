"""The run summary page: metrics and scores shown, input text escaped, no torch import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from astroflow.summary import environment, package_versions, render_summary, write_summary

CONFIG = {
    "seed": 42,
    "data": {"suite": "IllustrisTNG", "set": "LH", "fields": ["Mgas", "HI"], "n_sims": 200},
    "experiments": {"cnn2d_mgas": {"model": "cnn2d", "fields": ["Mgas"], "lr": 0.001}},
}


def write_inputs(tmp_path: Path, experiment: str = "cnn2d_mgas"):
    metrics = {
        "Omega_m": {
            "rmse": 0.0123456,
            "r2": 0.912345,
            "mean_relative_error": 0.05,
            "mean_sigma": 0.0134,
            "frac_within_1sigma": 0.66,
        },
        "sigma_8": {
            "rmse": 0.0456,
            "r2": 0.4321,
            "mean_relative_error": 0.07,
            "mean_sigma": 0.05,
            "frac_within_1sigma": 0.71,
        },
        "n_maps": 600,
    }
    clusters = {
        "n_samples": 600,
        "n_clusters": 4,
        "silhouette": 0.3141592,
        "knn_r2_omega_m": 0.8765,
        "inertia": 1234.5678,
        "cluster_sizes": [150, 149, 151, 150],
        "knn_r2_by_param": {"Omega_m": 0.8765, "sigma_8": -0.25},
        "labels": [7777777] * 600,
    }
    m_path = tmp_path / "metrics.json"
    c_path = tmp_path / "clusters.json"
    m_path.write_text(json.dumps(metrics))
    c_path.write_text(json.dumps(clusters))
    return {experiment: m_path}, {experiment: c_path}


class TableReader(HTMLParser):
    """Collects table cells as rows of text, and every tag seen, from the page."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()
        self.pre: list[str] = []
        self._cell: list[str] | None = None
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "pre":
            self._in_pre = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_pre:
            self.pre.append(data)


def parse(page: str) -> TableReader:
    reader = TableReader()
    reader.feed(page)
    return reader


def test_metrics_cluster_scores_and_config_on_page(tmp_path):
    metrics, clusters = write_inputs(tmp_path)
    out = tmp_path / "report" / "summary.html"
    assert write_summary(CONFIG, metrics, clusters, out) == out
    page = out.read_text()
    reader = parse(page)
    # The per-parameter KNN table repeats parameter names as row labels: keep it apart.
    knn_start = reader.rows.index(["knn R2 of", "cnn2d_mgas"])
    knn_rows = reader.rows[knn_start : knn_start + 3]
    other_rows = reader.rows[:knn_start] + reader.rows[knn_start + 3 :]
    rows = {row[0]: row[1:] for row in other_rows}

    # Metrics table: one row per parameter, preferred column order, 4 significant digits.
    assert rows["parameter"] == [
        "rmse",
        "r2",
        "mean_relative_error",
        "mean_sigma",
        "frac_within_1sigma",
    ]
    assert rows["Omega_m"] == ["0.01235", "0.9123", "0.05", "0.0134", "0.66"]
    assert rows["sigma_8"][:2] == ["0.0456", "0.4321"]
    assert "n_maps = 600" in page
    # Cluster table: scores shown, per-map labels not.
    header = rows["experiment"]
    scores = dict(zip(header, rows["cnn2d_mgas"], strict=True))
    assert scores["silhouette"] == "0.3142"
    assert scores["knn_r2_omega_m"] == "0.8765"
    assert scores["cluster_sizes"] == "150, 149, 151, 150"
    assert "labels" not in header and "7777777" not in page
    # Per-parameter KNN scores: a table of their own, one row per parameter.
    assert "knn_r2_by_param" not in header
    assert knn_rows[1:] == [["Omega_m", "0.8765"], ["sigma_8", "-0.25"]]
    # The config round-trips through the <pre> block.
    assert yaml.safe_load("".join(reader.pre)) == CONFIG
    # Environment rows.
    assert rows["python"][0].split()[-1] == ".".join(map(str, sys.version_info[:3]))
    assert rows["numpy"] == [package_versions(["numpy"])["numpy"]]
    for name in ("astroflow", "torch", "scikit-learn", "openTSNE", "snakemake", "platform"):
        assert name in rows


def test_page_is_self_contained(tmp_path):
    metrics, clusters = write_inputs(tmp_path)
    page = render_summary(CONFIG, {"a": json.loads(metrics["cnn2d_mgas"].read_text())}, {})
    tags = parse(page).tags
    assert not tags & {"script", "link", "img", "iframe"}
    assert not re.search(r"(src|href)\s*=", page)
    assert "No cluster results." in page


def test_text_from_inputs_is_escaped(tmp_path):
    experiment = '<script>alert("x")</script>'
    metrics, clusters = write_inputs(tmp_path, experiment)
    config = {"note": "a < b & c > d", "<tag>": ["</pre>"]}
    page = render_summary(
        config,
        {experiment: json.loads(metrics[experiment].read_text())},
        {experiment: json.loads(clusters[experiment].read_text())},
    )
    assert "<script>" not in page
    assert page.count("</pre>") == 1  # the config's "</pre>" cannot close the block early
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    reader = parse(page)
    assert "script" not in reader.tags
    # Unescaped by the parser, the YAML block is exactly the config.
    assert yaml.safe_load("".join(reader.pre)) == config
    assert experiment in [row[0] for row in reader.rows]


def test_environment_uses_metadata_and_reports_missing():
    env = environment()
    assert env["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert package_versions(["no-such-distribution-xyz"]) == {
        "no-such-distribution-xyz": "not installed"
    }


def test_bad_json_names_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    out = tmp_path / "summary.html"
    with pytest.raises(ValueError, match=r"metrics\.json"):
        write_summary(CONFIG, {"x": bad}, {}, out)
    assert not out.exists()


def test_import_does_not_load_torch():
    code = "import astroflow.summary, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cube_metrics_show_network_baseline_and_ratio(tmp_path):
    scores = {"density_rmse_dex": 0.3429, "density_r2": 0.847, "velocity_rmse_kms": 0.5001}
    metrics = {
        "n_cubes": 64,
        "network": scores,
        "baseline": {"density_rmse_dex": 0.6868, "density_r2": 0.388, "velocity_rmse_kms": 0.6469},
        "ratio": {"density_rmse_dex": 0.4994, "velocity_rmse_kms": 0.7731},
    }
    config = {**CONFIG, "experiments": {"cnn3d_cores": {"model": "cnn3d"}}}
    page = render_summary(config, {"cnn3d_cores": metrics}, {}, env={"python": "3"})
    reader = TableReader()
    reader.feed(page)
    header, *rows = reader.rows[:4]
    assert header == ["profiles from", "density_rmse_dex", "density_r2", "velocity_rmse_kms"]
    assert [row[0] for row in rows] == ["network", "baseline", "ratio"]
    assert (rows[0][1], rows[1][1], rows[2][1]) == ("0.3429", "0.6868", "0.4994")
    assert rows[2][2] == "\u2013"  # the ratio has no R^2
    assert "n_cubes = 64" in page
