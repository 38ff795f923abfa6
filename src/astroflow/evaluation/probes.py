"""What an embedding encodes: probes fitted on the training maps' embeddings and scored on
the test maps' (other simulations).

A kNN regression (cosine distance, distance-weighted) asks whether neighbours in the
embedding share a value; a linear probe whether the value is a direction of it. Both are
scored with the project's R^2 (:func:`~astroflow.evaluation.regression.r2_score`), so the
same number compares a self-supervised embedding, a supervised one and the PCA of raw
pixels, the baseline every embedding must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from astroflow.evaluation.regression import r2_score

KNN_NEIGHBORS = 20
KNN_BLOCK_ELEMENTS = 1 << 23
"""Similarities (float64) of one block of the kNN search: 64 MiB, whatever the sizes."""
RIDGE_ALPHAS = tuple(10.0**k for k in range(-3, 4))
"""Ridge penalties the linear probe chooses from by leave-one-out on the training maps."""


def knn_r2(
    train: np.ndarray,
    train_y: np.ndarray,
    test: np.ndarray,
    test_y: np.ndarray,
    n_neighbors: int = KNN_NEIGHBORS,
) -> list[float | None]:
    """R^2 per column of ``test_y`` (n, P) of a kNN regression fitted on (``train``,
    ``train_y``): cosine distance, neighbours weighted by inverse distance."""
    if n_neighbors > len(train):
        raise ValueError(f"{n_neighbors} neighbours but only {len(train)} training rows")
    predicted = cosine_knn_predict(train, train_y.reshape(len(train), -1), test, n_neighbors)
    predicted = predicted.reshape(test_y.shape)
    return [r2_score(test_y[:, j], predicted[:, j]) for j in range(test_y.shape[1])]


def cosine_knn_predict(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, n_neighbors: int
) -> np.ndarray:
    """Distance-weighted kNN prediction (n_test, P) under cosine distance, as scikit-learn's
    ``KNeighborsRegressor(metric="cosine", weights="distance")`` gives it (neighbours at
    distance 0, where present, share all the weight), in float64.

    Blocks of test rows against all training rows, one matrix product and one top-k each:
    at 15,000 x 70,000 embeddings it is several times faster than scikit-learn's brute
    force, which sorts every block of distances in numpy.
    """
    unit_train = torch.nn.functional.normalize(torch.as_tensor(train, dtype=torch.float64), dim=1)
    unit_test = torch.nn.functional.normalize(torch.as_tensor(test, dtype=torch.float64), dim=1)
    targets = torch.as_tensor(train_y, dtype=torch.float64)
    block = max(1, KNN_BLOCK_ELEMENTS // len(train))
    out = np.empty((len(test), targets.shape[1]))
    for lo in range(0, len(test), block):
        similarity = unit_test[lo : lo + block] @ unit_train.T
        top, index = torch.topk(similarity, n_neighbors, dim=1)
        distance = (1.0 - top).clamp_(min=0.0)
        exact = distance == 0
        weight = torch.where(exact.any(dim=1, keepdim=True), exact.double(), 1.0 / distance)
        out[lo : lo + block] = (
            (weight[..., None] * targets[index]).sum(dim=1) / weight.sum(dim=1, keepdim=True)
        ).numpy()
    return out


def linear_r2(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray
) -> list[float | None]:
    """R^2 per column of a ridge regression on standardized features (penalty chosen by
    leave-one-out on the training rows)."""
    scaler = StandardScaler().fit(train)
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(scaler.transform(train), train_y)
    predicted = ridge.predict(scaler.transform(test)).reshape(test_y.shape)
    return [r2_score(test_y[:, j], predicted[:, j]) for j in range(test_y.shape[1])]


def pixel_pca(
    train_maps: np.ndarray, test_maps: np.ndarray, n_components: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """PCA features of flattened maps (n, C, N, N), fitted on the training maps: the
    embedding a network has to beat."""
    train = train_maps.reshape(len(train_maps), -1)
    k = min(n_components, *train.shape)
    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(train)
    return pca.transform(train), pca.transform(test_maps.reshape(len(test_maps), -1))


def probe_table(
    train: np.ndarray,
    train_y: np.ndarray,
    test: np.ndarray,
    test_y: np.ndarray,
    names: Sequence[str],
) -> dict[str, dict[str, float | None]]:
    """``{name: {"knn_r2": ..., "linear_r2": ...}}`` for every column of the targets."""
    knn = knn_r2(train, train_y, test, test_y)
    linear = linear_r2(train, train_y, test, test_y)
    return {name: {"knn_r2": knn[j], "linear_r2": linear[j]} for j, name in enumerate(names)}
