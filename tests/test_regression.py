"""Regression scores on hand-made cases: perfect, hand-computed, the mean predictor, calibrated
Gaussian errors, an undefined R^2, and mismatched shapes."""

import numpy as np
import pytest

from astroflow.evaluation.regression import r2_score, regression_metrics


def test_perfect_prediction():
    truth = np.array([[0.2, 0.7], [0.3, 0.9], [0.4, 0.8]])
    m = regression_metrics(truth, np.full_like(truth, 0.01), truth, ["Omega_m", "sigma_8"])
    for name in ("Omega_m", "sigma_8"):
        assert m[name] == {
            "rmse": 0.0,
            "r2": 1.0,
            "mean_relative_error": 0.0,
            "mean_sigma": pytest.approx(0.01),
            "frac_within_1sigma": 1.0,
        }


def test_metrics_match_hand_computation():
    truth = np.array([[1.0], [2.0], [3.0], [4.0]])
    mean = np.array([[1.0], [2.0], [4.0], [3.0]])
    std = np.array([[0.5], [0.5], [0.5], [2.0]])
    m = regression_metrics(mean, std, truth, ["A_SN1"])["A_SN1"]
    # Errors (0, 0, 1, -1): SS_res = 2, SS_tot = 5; relative errors (0, 0, 1/3, 1/4).
    assert m["rmse"] == pytest.approx(np.sqrt(0.5))
    assert m["r2"] == pytest.approx(1 - 2 / 5)
    assert m["mean_relative_error"] == pytest.approx((1 / 3 + 1 / 4) / 4)
    assert m["mean_sigma"] == pytest.approx(0.875)
    assert m["frac_within_1sigma"] == 0.75


def test_predicting_the_mean_of_the_truth_scores_r2_zero():
    truth = np.linspace(0.1, 0.5, 11)[:, None]
    m = regression_metrics(np.full_like(truth, truth.mean()), np.ones_like(truth), truth, ["x"])
    assert m["x"]["r2"] == pytest.approx(0.0, abs=1e-12)


def test_gaussian_errors_of_the_stated_width_are_within_one_sigma_68_percent():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.6, 1.0, size=(20000, 1))
    sigma = rng.uniform(0.01, 0.05, size=truth.shape)
    mean = truth + sigma * rng.standard_normal(truth.shape)
    m = regression_metrics(mean, sigma, truth, ["sigma_8"])["sigma_8"]
    assert m["frac_within_1sigma"] == pytest.approx(0.6827, abs=0.01)
    # Overconfident errors (half the true width) cover far less.
    m = regression_metrics(mean, sigma / 2, truth, ["sigma_8"])["sigma_8"]
    assert m["frac_within_1sigma"] == pytest.approx(0.3829, abs=0.01)


def test_r2_is_undefined_for_constant_truth():
    truth = np.full((4, 1), 0.3)
    assert (
        regression_metrics(truth + 0.01, np.ones_like(truth), truth, ["Omega_m"])["Omega_m"]["r2"]
        is None
    )


def test_metric_inputs_must_share_a_shape():
    with pytest.raises(ValueError, match="one \\(n, P\\) shape"):
        regression_metrics(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 2)), ["a", "b"])


def test_r2_score_is_the_fraction_of_variance_explained():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(truth, truth) == 1.0
    assert r2_score(truth, np.full(4, 2.5)) == 0.0
    assert r2_score(truth, truth + 1.0) == pytest.approx(1.0 - 4.0 / 5.0)
    assert r2_score(np.ones(4), np.arange(4.0)) is None
    with pytest.raises(ValueError, match="shape"):
        r2_score(truth, truth[:3])
