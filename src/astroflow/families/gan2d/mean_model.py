"""The generator's base for the mean of every field at given parameters: a Gaussian-process
regression of the training simulations' mean log values on their parameters.

Why not leave the mean to the network: the pixel distribution is judged against a noise floor
of a few thousandths of a dex, and each simulation's mean is known to better than one
thousandth from its maps, but it moves by a tenth of a dex over the parameter space and not
linearly. A network trained through noisy group statistics interpolated it between the
training simulations with errors of 5-7 thousandths at the test simulations; a Gaussian
process with one length scale per parameter (automatic relevance: the gas mass ignores the
feedback parameters) interpolates it two to three times closer, and costs a second to fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from astroflow.models.gan2d import KernelMean

RESTARTS = 2
"""Extra random starts of the marginal-likelihood optimizer (beside the unit lengths)."""


def fit_kernel_mean(params: np.ndarray, means: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Buffers of :class:`KernelMean` fitted to ``means`` (S, F) at scaled ``params`` (S, P).

    Per field: the means standardized, then a process with kernel c * RBF(lengths) + white
    noise whose hyperparameters maximize the marginal likelihood (``seed`` fixes the
    optimizer's restarts, so every run and every rank fits the same function).
    """
    params, means = np.asarray(params, np.float64), np.asarray(means, np.float64)
    n_sims, n_params = params.shape
    if means.shape[0] != n_sims:
        raise ValueError(f"{means.shape[0]} rows of means for {n_sims} rows of parameters")
    weights = np.zeros((n_sims, means.shape[1]))
    inverse_lengths = np.zeros((means.shape[1], n_params))
    bias = means.mean(axis=0)
    for f, values in enumerate(means.T):
        scale = values.std()
        if scale == 0:
            continue  # a constant (or one simulation): the bias holds it
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(
            np.ones(n_params), (1e-2, 1e3)
        ) + WhiteKernel(1e-4, (1e-6, 1.0))
        process = GaussianProcessRegressor(kernel, n_restarts_optimizer=RESTARTS, random_state=seed)
        with warnings.catch_warnings():
            # A length at its upper bound means "this parameter does not matter", as intended.
            warnings.simplefilter("ignore", ConvergenceWarning)
            process.fit(params, (values - bias[f]) / scale)
        amplitude, rbf = process.kernel_.k1.k1.constant_value, process.kernel_.k1.k2
        weights[:, f] = scale * amplitude * process.alpha_
        inverse_lengths[f] = 1.0 / np.broadcast_to(rbf.length_scale, (n_params,))
    return {
        "anchors": params,
        "weights": weights,
        "inverse_lengths": inverse_lengths,
        "bias": bias,
    }


def load_kernel_mean(module: KernelMean, fitted: dict[str, np.ndarray]) -> None:
    """Copy fitted buffers into ``module`` (whose shapes the generator's arch fixed)."""
    for name, value in fitted.items():
        buffer = getattr(module, name)
        buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device))
