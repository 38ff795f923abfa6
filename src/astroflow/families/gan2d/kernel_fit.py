"""The generator's bases for the mean, the pixel scale and the pixel distribution of every field:
Gaussian-process regressions of the training simulations' mean log values, log pixel
standard deviations and standardized quantile shapes on their parameters.

Why not leave them to the network: the pixel distribution is judged against a noise floor of a
few thousandths of a dex, and each simulation's mean is known to better than one thousandth
from its maps, but it moves by a tenth of a dex over the parameter space and not linearly. A
network trained through noisy group statistics interpolated the mean between the training
simulations with errors of 5-7 thousandths at the test simulations; a Gaussian process with
one length scale per parameter (automatic relevance: the gas mass ignores the feedback
parameters) interpolates it two to three times closer, and costs seconds to fit. The Matern
5/2 kernel interpolated the HI mean a fifth closer than the squared exponential on the default
data (it allows rougher functions), and no worse elsewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from astroflow.maps.cmd import LH_RANGES, LOG_SAMPLED
from astroflow.models.gan2d import KernelRegression, QuantileMap, log_warp

RESTARTS = 2
"""Extra random starts of the marginal-likelihood optimizer (beside the unit lengths)."""


def fit_kernel_regression(
    params: np.ndarray, values: np.ndarray, seed: int, log_ratios: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Buffers of :class:`KernelRegression` fitted to ``values`` (S, F) at scaled ``params``
    (S, P), regressed on in log where ``log_ratios`` (P,) is positive (:func:`log_warp`).

    Per field: the values standardized, then a process with kernel c * Matern 5/2(lengths) +
    white noise whose hyperparameters maximize the marginal likelihood (``seed`` fixes the
    optimizer's restarts, so every run and every rank fits the same function).
    """
    values = np.asarray(values, np.float64)
    n_sims, n_params = np.shape(params)
    log_ratios = np.zeros(n_params) if log_ratios is None else np.asarray(log_ratios, np.float64)
    params = log_warp(torch.as_tensor(params, dtype=torch.float64), torch.from_numpy(log_ratios))
    params = params.numpy()
    if values.shape[0] != n_sims:
        raise ValueError(f"{values.shape[0]} rows of values for {n_sims} rows of parameters")
    weights = np.zeros((n_sims, values.shape[1]))
    inverse_lengths = np.zeros((values.shape[1], n_params))
    bias = values.mean(axis=0)
    for f, column in enumerate(values.T):
        scale = column.std()
        if scale == 0:
            continue  # a constant (or one simulation): the bias holds it
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            np.ones(n_params), (1e-2, 1e3), nu=2.5
        ) + WhiteKernel(1e-4, (1e-6, 1.0))
        process = GaussianProcessRegressor(kernel, n_restarts_optimizer=RESTARTS, random_state=seed)
        with warnings.catch_warnings():
            # A length at its upper bound means "this parameter does not matter", as intended.
            warnings.simplefilter("ignore", ConvergenceWarning)
            process.fit(params, (column - bias[f]) / scale)
        amplitude, matern = process.kernel_.k1.k1.constant_value, process.kernel_.k1.k2
        weights[:, f] = scale * amplitude * process.alpha_
        inverse_lengths[f] = 1.0 / np.broadcast_to(matern.length_scale, (n_params,))
    return {
        "anchors": params,
        "weights": weights,
        "inverse_lengths": inverse_lengths,
        "bias": bias,
        "log_ratios": log_ratios,
    }


def log_ratios_of(params: list[str]) -> np.ndarray:
    """ln(max / min) of the LH range of each parameter sampled in log, 0 for the others."""
    return np.array(
        [np.log(LH_RANGES[p][1] / LH_RANGES[p][0]) if p in LOG_SAMPLED else 0.0 for p in params]
    )


def load_kernel_regression(module: KernelRegression, fitted: dict[str, np.ndarray]) -> None:
    """Copy fitted buffers into ``module`` (whose shapes the generator's arch fixed)."""
    for name, value in fitted.items():
        buffer = getattr(module, name)
        buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device))


def fit_quantile_shapes(
    params: np.ndarray,
    quantiles: np.ndarray,
    moments: np.ndarray,
    components: int,
    seed: int,
    log_ratios: np.ndarray | None = None,
) -> dict[str, object]:
    """Buffers of :class:`QuantileMap` from the training simulations' quantile means
    ``quantiles`` (S, F, L) and pixel ``moments`` (2, S, F) (mean, standard deviation), at
    scaled ``params`` (S, P).

    Per field, the standardized quantile functions are the mean shape plus the ``components``
    leading principal shapes (a few carry the skewness and tails the parameters move; the
    rest is the noise of 15 maps), and a kernel regression of every simulation's coefficients
    predicts them at new parameters.
    """
    quantiles = np.asarray(quantiles, np.float64)
    means, stds = np.asarray(moments, np.float64)
    shapes = (quantiles - means[..., None]) / stds[..., None]
    n_sims, n_fields, levels = shapes.shape
    mean_shape = shapes.mean(axis=0)
    basis = np.zeros((n_fields, components, levels))
    coefficients = np.zeros((n_sims, n_fields, components))
    for f in range(n_fields):
        centred = shapes[:, f] - mean_shape[f]
        leading = np.linalg.svd(centred, full_matrices=False)[2][:components]
        basis[f, : len(leading)] = leading
        coefficients[:, f] = centred @ basis[f].T
    fitted = fit_kernel_regression(params, coefficients.reshape(n_sims, -1), seed, log_ratios)
    return {"shape_mean": mean_shape, "shape_basis": basis, "coefficients": fitted}


def load_quantile_map(module: QuantileMap, fitted: dict[str, object]) -> None:
    """Copy :func:`fit_quantile_shapes` buffers into ``module``."""
    for name in ("shape_mean", "shape_basis"):
        buffer = getattr(module, name)
        buffer.copy_(torch.as_tensor(fitted[name], dtype=buffer.dtype, device=buffer.device))
    load_kernel_regression(module.coefficients, fitted["coefficients"])
