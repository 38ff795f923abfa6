"""Classification metrics, and the power-spectrum baseline every map classifier is judged against.

A CNN that tells two kinds of maps apart is only interesting if it uses more than the power
spectrum and the one-point distribution, which a cosmologist would measure first. The baseline
here is exactly that analysis made into a classifier: binned log10 P(k) and the first four
moments of the pixel values of every channel, standardized, into a logistic regression. Its
accuracy next to the CNN's says how much of the CNN's skill lies beyond P(k) and the PDF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.preprocessing import StandardScaler

from astroflow.maps.power_spectrum import power_spectrum_2d

MOMENTS = ("mean", "std", "skewness", "kurtosis")
"""One-point moments per channel, in feature order (kurtosis in excess of a Gaussian's)."""

BASELINE_MAX_ITER = 5000
"""lbfgs iterations of the logistic regression; a few hundred suffice on standardized features."""


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, ROC AUC, Brier score and confusion matrix of class ``probabilities`` (n, K).

    ``labels`` (n,) are integer classes in [0, K). The predicted class is the most probable.
    ``roc_auc`` is that of class 1 for K = 2 and the unweighted mean of the one-vs-rest AUCs for
    K > 2; it is None when a class is absent from ``labels`` (undefined). ``brier`` is the
    multi-class form, the mean over maps of sum_k (p_k - [label = k])^2: 0 is perfect, 0.5 is a
    binary classifier that always says 1/2, 2 is always confidently wrong. ``confusion`` has
    rows for the true and columns for the predicted class. All values are plain JSON types.
    """
    probabilities, labels = _check_probabilities(probabilities, labels)
    n, n_classes = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(n_classes)[labels]
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "roc_auc": _roc_auc(probabilities, labels),
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
        "confusion": confusion_matrix(labels, predicted, labels=range(n_classes)).tolist(),
        "n": int(n),
    }


def spectral_features(maps: np.ndarray, box_size: float, n_bins: int | None = None) -> np.ndarray:
    """Baseline features (n, C * (n_bins + 4)) of periodic ``maps`` (n, C, N, N).

    Per channel, in channel order: log10 of the binned power spectrum
    (:func:`~astroflow.maps.power_spectrum.power_spectrum_2d`, ``n_bins`` bins, default N // 2),
    then the mean, standard deviation, skewness and excess kurtosis of the pixel values.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"maps must have shape (n, C, N, N), got {maps.shape}")
    _, power, _ = power_spectrum_2d(maps, box_size, n_bins)
    if not np.all(power > 0):
        bad = np.flatnonzero(~np.all(power > 0, axis=(1, 2)))
        raise ValueError(f"maps {bad[:10].tolist()} have empty power spectrum bins (constant?)")
    pixels = maps.reshape(*maps.shape[:2], -1)
    moments = np.stack(
        [
            pixels.mean(axis=-1),
            pixels.std(axis=-1),
            stats.skew(pixels, axis=-1),
            stats.kurtosis(pixels, axis=-1),
        ],
        axis=-1,
    )
    return np.concatenate([np.log10(power), moments], axis=-1).reshape(len(maps), -1)


def fit_spectral_baseline(features: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
    """Fit the baseline classifier: standardization, then (multinomial) logistic regression.

    ``features`` (n, F) from :func:`spectral_features`, ``labels`` (n,) integer classes. The
    lbfgs fit is deterministic; ``seed`` fixes any randomness a solver change would bring.
    Returns the fitted numbers as plain data (``mean``, ``scale`` of the standardization,
    ``coef``, ``intercept`` and ``classes`` of the regression), which a model file can hold
    and :func:`spectral_baseline_probabilities` applies.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(
            f"features must be (n, F) and labels (n,), got {features.shape} and {labels.shape}"
        )
    if np.unique(labels).size < 2:
        raise ValueError("labels must hold at least two classes to fit a classifier")
    scaler = StandardScaler().fit(features)
    logistic = LogisticRegression(max_iter=BASELINE_MAX_ITER, random_state=seed)
    logistic.fit(scaler.transform(features), labels)
    return {
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": logistic.coef_.tolist(),
        "intercept": logistic.intercept_.tolist(),
        "classes": logistic.classes_.tolist(),
    }


def spectral_baseline_probabilities(
    baseline: Mapping[str, Any], features: np.ndarray, n_classes: int
) -> np.ndarray:
    """Class probabilities (n, n_classes) of a fitted baseline for ``features`` (n, F).

    Column k is class k, also when the training labels lacked some class (its column is 0),
    so the result lines up with the CNN's probabilities in :func:`classification_metrics`.
    """
    features = np.asarray(features, dtype=np.float64)
    expected = len(baseline["mean"])
    if features.ndim != 2 or features.shape[1] != expected:
        raise ValueError(f"features must be (n, {expected}), got {features.shape}")
    classes = np.asarray(baseline["classes"])
    if classes.min() < 0 or classes.max() >= n_classes:
        raise ValueError(f"the baseline knows classes {classes.tolist()}, not all < {n_classes}")
    z = (features - np.asarray(baseline["mean"])) / np.asarray(baseline["scale"])
    logits = z @ np.asarray(baseline["coef"]).T + np.asarray(baseline["intercept"])
    if len(classes) == 2:  # a binary regression has one logit, that of the second class
        logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    known = np.exp(logits)
    out = np.zeros((len(features), n_classes))
    out[:, classes] = known / known.sum(axis=1, keepdims=True)
    return out


def _check_probabilities(
    probabilities: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2 or len(probabilities) == 0:
        raise ValueError(
            f"probabilities must have shape (n >= 1, K >= 2), got {probabilities.shape}"
        )
    if labels.shape != (len(probabilities),):
        raise ValueError(
            f"labels must have shape ({len(probabilities)},) like probabilities, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    n_classes = probabilities.shape[1]
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4) or probabilities.min() < 0:
        raise ValueError("probabilities must be non-negative with rows summing to 1")
    return probabilities, labels.astype(np.int64)


def _roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    n_classes = probabilities.shape[1]
    if np.unique(labels).size < n_classes:
        return None
    if n_classes == 2:
        return float(roc_auc_score(labels == 1, probabilities[:, 1]))
    return float(
        np.mean([roc_auc_score(labels == k, probabilities[:, k]) for k in range(n_classes)])
    )
