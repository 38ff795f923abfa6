"""The embedding analysis at scale: PCA, t-SNE, clusters and scores of every map's embedding,
read shard file by shard file so that memory stays bounded at 10^5-10^6 maps.

Inputs are per-shard embedding files (:mod:`astroflow.embed` layout, one per shard of every
split, each with attribute ``split``). The embeddings are never held whole: two streaming
passes standardize (running mean and variance) and fit an IncrementalPCA chunk by chunk, a
third keeps only the reduced features (n, k) float32. openTSNE (FFT-accelerated gradients,
approximate neighbours, PCA initialization, the early-exaggeration then plain phases of its
documentation) and MiniBatchKMeans work on those; the silhouette score takes a sample.

Every stage's wall time and the process's peak resident memory are logged and returned,
because the point of this module is that both stay within a budget.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import IncrementalPCA
from sklearn.metrics import silhouette_score

from astroflow.cluster import limit_threads
from astroflow.io import atomic_path, string_attr, write_json

log = logging.getLogger(__name__)

EARLY_EXAGGERATION = 12.0
EARLY_ITERATIONS = 250
EARLY_MOMENTUM = 0.5
FINAL_MOMENTUM = 0.8
KMEANS_BATCH = 4096


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


@dataclass
class StageLog:
    """Wall time (s), CPU time of all threads (s) and peak RSS (MB) after each stage, in
    order. On a shared node the wall time depends on the neighbours; the CPU time does not."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.stages[name] = {
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        log.info("%s: %.1f s (%.1f s CPU), peak RSS %.0f MB", name, *self.stages[name].values())


def chunks(
    paths: Sequence[str | os.PathLike[str]], rows: int
) -> Iterator[tuple[np.ndarray, h5py.File, slice]]:
    """Blocks of at most ``rows`` embeddings (float64) of the files in order, with the open
    file and the rows of the block in it."""
    for path in paths:
        with h5py.File(path, "r") as h5:
            if "embeddings" not in h5:
                raise KeyError(f"{path}: missing dataset 'embeddings' (found {sorted(h5)})")
            n = h5["embeddings"].shape[0]
            for lo in range(0, n, rows):
                block = slice(lo, min(n, lo + rows))
                yield np.asarray(h5["embeddings"][block], dtype=np.float64), h5, block


def reduce(
    paths: Sequence[str | os.PathLike[str]], n_components: int, rows: int, seed: int
) -> tuple[np.ndarray, pd.DataFrame, IncrementalPCA]:
    """Standardized, PCA-reduced embeddings (n, k) float32 of all files, and a table of each
    row's ``split``, ``sim_id``, ``map_index`` and parameters. Three passes, one chunk in
    memory at a time besides the reduced array."""
    count, total, squares = 0, 0.0, 0.0
    for x, _, _ in chunks(paths, rows):
        count += len(x)
        total = total + x.sum(axis=0)
        squares = squares + (x**2).sum(axis=0)
    if count < 2:
        raise ValueError(f"{len(paths)} embedding files hold {count} rows: nothing to analyse")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0)) + 1e-12
    k = max(1, min(n_components, count, len(mean)))
    pca = IncrementalPCA(n_components=k)
    pending: list[np.ndarray] = []
    for x, _, _ in chunks(paths, rows):
        # IncrementalPCA needs at least k rows per call: small tail chunks wait for the next.
        pending.append((x - mean) / std)
        if sum(len(p) for p in pending) >= k:
            pca.partial_fit(np.concatenate(pending))
            pending = []
    # Fewer than k rows may remain unfitted at the end: the fit has seen all the others.
    reduced = np.empty((count, k), np.float32)
    tables, at = [], 0
    for x, h5, block in chunks(paths, rows):
        reduced[at : at + len(x)] = pca.transform((x - mean) / std)
        at += len(x)
        tables.append(_row_table(h5, block))
    return reduced, pd.concat(tables, ignore_index=True), pca


def _row_table(h5: h5py.File, block: slice) -> pd.DataFrame:
    names = string_attr(h5, "param_names")
    table = pd.DataFrame(h5["params_raw"][block], columns=names)
    table.insert(0, "map_index", h5["map_index"][block])
    table.insert(0, "sim_id", h5["sim_id"][block])
    table.insert(0, "split", h5.attrs.get("split", "unknown"))
    return table


def tsne_map(
    features: np.ndarray, perplexity: float, n_iter: int, seed: int, n_jobs: int
) -> np.ndarray:
    """2D openTSNE map of (n, k) features: approximate neighbours, PCA initialization, FFT
    gradients; 250 iterations of early exaggeration 12 (momentum 0.5), then ``n_iter`` plain
    ones (momentum 0.8), the schedule of openTSNE's documentation."""
    from openTSNE import TSNEEmbedding, affinity, initialization

    affinities = affinity.PerplexityBasedNN(
        features, perplexity=perplexity, method="annoy", n_jobs=n_jobs, random_state=seed
    )
    init = initialization.pca(features, random_state=seed)
    embedding = TSNEEmbedding(
        init, affinities, negative_gradient_method="fft", n_jobs=n_jobs, random_state=seed
    )
    embedding = embedding.optimize(
        n_iter=EARLY_ITERATIONS, exaggeration=EARLY_EXAGGERATION, momentum=EARLY_MOMENTUM
    )
    embedding = embedding.optimize(n_iter=n_iter, momentum=FINAL_MOMENTUM)
    return np.asarray(embedding, dtype=np.float32)


def analyse(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    analysis: Mapping[str, Any],
    colour_by: Sequence[str],
    seed: int,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """The whole analysis of the embedding files ``paths``, into ``out_dir``:
    ``tsne.parquet`` (one row per map: t-SNE coordinates, cluster, split, ids, parameters),
    ``analysis.json`` (sizes, scores, time and peak memory per stage) and
    ``figures/tsne.png`` (coloured by the first of ``colour_by`` and by cluster).

    ``analysis``: the config's ``analysis`` section (``pca_components``, ``perplexity``,
    ``n_clusters``, ``silhouette_sample``, ``chunk_rows``, ``tsne_iterations``).
    """
    out = Path(out_dir)
    timing = StageLog()
    with limit_threads(n_jobs):
        with timing.stage("pca"):
            reduced, table, pca = reduce(
                paths, analysis["pca_components"], analysis["chunk_rows"], seed
            )
        with timing.stage("tsne"):
            xy = tsne_map(
                reduced, analysis["perplexity"], analysis["tsne_iterations"], seed, n_jobs
            )
        with timing.stage("clusters"):
            kmeans = MiniBatchKMeans(
                n_clusters=analysis["n_clusters"],
                batch_size=KMEANS_BATCH,
                n_init=3,
                random_state=seed,
            )
            labels = kmeans.fit_predict(reduced)
            sample = min(len(reduced), analysis["silhouette_sample"])
            silhouette = silhouette_score(reduced, labels, sample_size=sample, random_state=seed)
    with timing.stage("figures"):
        table.insert(0, "cluster", labels)
        table.insert(0, "tsne_y", xy[:, 1])
        table.insert(0, "tsne_x", xy[:, 0])
        with atomic_path(out / "tsne.parquet") as tmp:
            table.to_parquet(tmp, engine="pyarrow", index=False)
        plot_large_tsne(table, out / "figures" / "tsne.png", colour_by[0])
    result = {
        "n_maps": len(table),
        "n_files": len(paths),
        "maps_by_split": table["split"].value_counts().sort_index().to_dict(),
        "embedding_dim": int(pca.n_features_in_),
        "pca_components": int(pca.n_components_),
        "pca_explained_variance": float(pca.explained_variance_ratio_.sum()),
        "n_clusters": int(analysis["n_clusters"]),
        "cluster_sizes": np.bincount(labels, minlength=analysis["n_clusters"]).tolist(),
        "silhouette": float(silhouette),
        "silhouette_sample_size": sample,
        "stages": timing.stages,
        "total_seconds": round(sum(s["seconds"] for s in timing.stages.values()), 2),
        "total_cpu_seconds": round(sum(s["cpu_seconds"] for s in timing.stages.values()), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_json(out / "analysis.json", result)
    return result


def plot_large_tsne(table: pd.DataFrame, out_png: Path, colour_by: str) -> None:
    """The t-SNE map of up to millions of maps: rasterized points, coloured by one parameter
    and by cluster."""
    from matplotlib.figure import Figure

    from astroflow.plots import DPI, param_label, save_png

    x, y = table["tsne_x"].to_numpy(), table["tsne_y"].to_numpy()
    size = float(np.clip(3000.0 / len(table), 0.05, 10.0))
    fig = Figure(figsize=(11, 4.8), dpi=DPI, layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    points = left.scatter(x, y, c=table[colour_by], s=size, lw=0, rasterized=True)
    fig.colorbar(points, ax=left, label=param_label(colour_by))
    points = right.scatter(x, y, c=table["cluster"], s=size, lw=0, cmap="tab10", rasterized=True)
    fig.colorbar(points, ax=right, label="MiniBatchKMeans cluster")
    left.set_title(f"{len(table):,} maps coloured by {param_label(colour_by)}")
    right.set_title("coloured by cluster")
    for ax in (left, right):
        ax.set_xlabel("t-SNE 1 (arbitrary units)")
    left.set_ylabel("t-SNE 2 (arbitrary units)")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, out_png)
