"""Classification metrics on hand-made cases; the P(k) + moments baseline sees P(k), not phases."""

import json

import numpy as np
import pytest

from astroflow.evaluation.classification import (
    classification_metrics,
    fit_spectral_baseline,
    spectral_baseline_probabilities,
    spectral_features,
)
from astroflow.maps.power_spectrum import (
    gaussian_random_field,
    input_power_spectrum,
    power_spectrum_2d,
)
from astroflow.maps.surrogates import counterparts

BOX = 25.0


def test_perfect_classifier():
    labels = np.array([0, 1, 1, 0, 1])
    metrics = classification_metrics(np.eye(2)[labels], labels)
    assert metrics == {
        "accuracy": 1.0,
        "roc_auc": 1.0,
        "brier": 0.0,
        "confusion": [[2, 0], [0, 3]],
        "n": 5,
    }
    json.dumps(metrics, allow_nan=False)  # plain JSON types


def test_inverted_classifier():
    labels = np.array([0, 1, 1, 0])
    metrics = classification_metrics(np.eye(2)[1 - labels], labels)
    assert metrics["accuracy"] == 0.0
    assert metrics["roc_auc"] == 0.0
    assert metrics["brier"] == pytest.approx(2.0)  # (1 - 0)^2 + (0 - 1)^2 for every map
    assert metrics["confusion"] == [[0, 2], [2, 0]]


def test_chance_classifier():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    metrics = classification_metrics(np.full((8, 2), 0.5), labels)
    assert metrics["roc_auc"] == 0.5
    assert metrics["brier"] == pytest.approx(0.5)
    assert metrics["accuracy"] == 3 / 8  # ties go to class 0
    assert metrics["confusion"] == [[3, 0], [5, 0]]


def test_known_brier_and_auc():
    p1 = np.array([0.9, 0.4, 0.5, 0.1])  # probability of class 1
    labels = np.array([1, 1, 0, 0])
    metrics = classification_metrics(np.stack([1 - p1, p1], axis=1), labels)
    # Positive-negative pairs ranked right: (0.9 > 0.5), (0.9 > 0.1), (0.4 > 0.1); not 0.4 < 0.5.
    assert metrics["roc_auc"] == pytest.approx(3 / 4)
    # Each map contributes twice its squared error on class 1: 2 (0.01 + 0.36 + 0.25 + 0.01) / 4.
    assert metrics["brier"] == pytest.approx(0.315)
    # Only the second map is misclassified; the tie of the third goes to class 0, its label.
    assert metrics["accuracy"] == 0.75


def test_three_classes_macro_one_vs_rest():
    probabilities = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.6, 0.3],
            [0.3, 0.3, 0.4],
            [0.5, 0.1, 0.4],
        ]
    )
    labels = np.array([0, 1, 2, 2, 0])
    metrics = classification_metrics(probabilities, labels)
    # Class 0: positives 0.7, 0.5 above all negatives -> 1. Class 1: positive 0.5 vs negatives
    # 0.2, 0.6, 0.3, 0.1 -> 3/4. Class 2: positives 0.3, 0.4 vs 0.1, 0.3, 0.4 -> (1.5 + 2.5)/6.
    assert metrics["roc_auc"] == pytest.approx((1 + 3 / 4 + 4 / 6) / 3)
    assert metrics["confusion"] == [[2, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert metrics["accuracy"] == pytest.approx(4 / 5)


def test_auc_undefined_without_both_classes():
    metrics = classification_metrics(np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 1]))
    assert metrics["roc_auc"] is None
    assert json.loads(json.dumps(metrics))["roc_auc"] is None


@pytest.mark.parametrize(
    ("probabilities", "labels", "match"),
    [
        (np.full((3, 2), 0.5), np.array([0, 1]), "labels must have shape"),
        (np.full((3,), 0.5), np.array([0, 1, 0]), "probabilities must have shape"),
        (np.full((2, 2), 0.5), np.array([0, 2]), r"labels must lie in \[0, 2\)"),
        (np.full((2, 2), 0.7), np.array([0, 1]), "rows summing to 1"),
        (np.full((2, 2), 0.5), np.array([0.0, 1.0]), "integers"),
    ],
)
def test_bad_metric_input(probabilities, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(probabilities, labels)


def gaussian_maps(n, power, seed, size):
    g = gaussian_random_field(size, BOX, power, np.random.default_rng(seed), size=n)
    return ((g - g.mean()) / g.std())[:, None].astype(np.float32)


def test_spectral_features_layout():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 2, 16, 16))
    maps[:, 1] = 2.0 + 3.0 * rng.exponential(size=(3, 16, 16))
    features = spectral_features(maps, BOX)
    assert features.shape == (3, 2 * (8 + 4))
    _, power, _ = power_spectrum_2d(maps, BOX)
    np.testing.assert_allclose(features[:, :8], np.log10(power[:, 0]))
    np.testing.assert_allclose(features[:, 12:20], np.log10(power[:, 1]))
    pixels = maps[:, 1].reshape(3, -1)
    np.testing.assert_allclose(features[:, 20], pixels.mean(axis=1))
    np.testing.assert_allclose(features[:, 21], pixels.std(axis=1))
    # An exponential distribution has skewness 2 and excess kurtosis 6 (noisy on 256 pixels).
    assert np.all(features[:, 22] > 1.0) and np.all(features[:, 23] > 2.0)
    assert spectral_features(maps, BOX, n_bins=4).shape == (3, 2 * (4 + 4))


def test_baseline_separates_power_spectrum_slopes():
    def power_law(slope):
        return lambda k: np.where(k > 0, np.maximum(k, 1e-9) ** slope, 0.0)

    maps = np.concatenate(
        [gaussian_maps(60, power_law(-2.0), 1, 32), gaussian_maps(60, power_law(-2.6), 2, 32)]
    )
    # Same variance for every map: only the shape of P(k) differs.
    maps /= maps.std(axis=(-2, -1), keepdims=True)
    labels = np.repeat([0, 1], 60)
    train = np.tile(np.arange(60) < 30, 2)
    features = spectral_features(maps, BOX)
    baseline = fit_spectral_baseline(features[train], labels[train], seed=0)
    probabilities = spectral_baseline_probabilities(baseline, features[~train], 2)
    assert classification_metrics(probabilities, labels[~train])["accuracy"] >= 0.95


def test_baseline_at_chance_on_counterparts_that_higher_order_statistics_tell_apart():
    n = 60
    maps = gaussian_maps(n, lambda k: input_power_spectrum(k, 0.3, 0.8), 3, 64)
    items = np.concatenate([maps, counterparts(maps, 1.0)])
    labels = np.repeat([0, 1], n)
    train = np.tile(np.arange(n) < n // 2, 2)

    features = spectral_features(items, BOX)
    baseline = fit_spectral_baseline(features[train], labels[train], seed=0)
    probabilities = spectral_baseline_probabilities(baseline, features[~train], 2)
    assert classification_metrics(probabilities, labels[~train])["accuracy"] < 0.6

    # The classes do differ: one more feature, the coefficient of variation of |grad f|^2
    # (1 for a Gaussian field), lifts the same classifier well above chance (measured 0.77).
    gy = np.roll(items, -1, -2) - np.roll(items, 1, -2)
    gx = np.roll(items, -1, -1) - np.roll(items, 1, -1)
    g2 = (gy.astype(np.float64) ** 2 + gx**2).reshape(2 * n, -1)
    with_cv = np.concatenate([features, (g2.std(axis=1) / g2.mean(axis=1))[:, None]], axis=1)
    baseline = fit_spectral_baseline(with_cv[train], labels[train], seed=0)
    probabilities = spectral_baseline_probabilities(baseline, with_cv[~train], 2)
    assert classification_metrics(probabilities, labels[~train])["accuracy"] > 0.7


def test_baseline_probabilities_line_up_with_classes():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3))
    labels = np.where(features[:, 0] > 0, 2, 0)  # class 1 never seen in training
    baseline = fit_spectral_baseline(features, labels, seed=0)
    probabilities = spectral_baseline_probabilities(baseline, features, 3)
    assert probabilities.shape == (40, 3)
    np.testing.assert_array_equal(probabilities[:, 1], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert classification_metrics(probabilities, labels)["accuracy"] >= 0.95
    with pytest.raises(ValueError, match=r"features must be \(n, 3\)"):
        spectral_baseline_probabilities(baseline, features[:, :2], 3)


def test_stored_baseline_gives_scikit_learns_probabilities():
    """The plain numbers a model file holds reproduce the fitted regression exactly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 4))
    for labels in (features[:, 1] > 0.2, np.digitize(features[:, 0], [-0.5, 0.5])):
        labels = labels.astype(int)
        baseline = fit_spectral_baseline(features, labels, seed=0)
        scaler = StandardScaler().fit(features)
        logistic = LogisticRegression(max_iter=5000, random_state=0)
        expected = logistic.fit(scaler.transform(features), labels).predict_proba(
            scaler.transform(features)
        )
        n_classes = labels.max() + 1
        actual = spectral_baseline_probabilities(baseline, features, n_classes)
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
