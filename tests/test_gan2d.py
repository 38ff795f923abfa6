"""gan2d: the networks' symmetries, the adversarial losses, and training through the engine
(every part checkpointed; a SIGKILLed run resumes to bitwise-equal weights)."""

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from resume_harness import assert_same_weights, attempt, train
from shard_factory import write_splits
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from astroflow.engine.options import RunOptions
from astroflow.families import get_family
from astroflow.families.gan2d import statistics
from astroflow.families.gan2d.kernel_fit import (
    RESTARTS,
    fit_kernel_regression,
    fit_quantile_shapes,
    load_kernel_regression,
    load_quantile_map,
    log_ratios_of,
)
from astroflow.families.gan2d.statistics import binning_matrix, set_spectra
from astroflow.families.gan2d.training import (
    Gan2dTraining,
    LearningRateFactor,
    adversarial_losses,
)
from astroflow.models.gan2d import (
    FILTER_BASIS,
    Critic,
    FiLMBlock,
    Generator,
    KernelRegression,
    QuantileMap,
    SpectralFilter,
    log_warp,
)

EVERY = 3
FIELDS = ["Mgas", "HI"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings() -> dict:
    family = get_family("gan2d")
    defaults = {key: spec["default"] for key, spec in family.settings.items()}
    return {
        **defaults,
        "model": "gan2d",
        "fields": FIELDS,
        "params": ["Omega_m", "sigma_8"],
        "latent": 4,
        "width": 4,
        "critic_width": 4,
        "embed": 8,
        "r1_every": 2,
        "instance_noise": 0.1,
        "val_sims": 2,
        "epochs": 3,
        "batch_size": 8,
        "lr": 0.001,
        "weight_decay": 0.0,
        "seed": 3,
    }


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan2d_shards")
    return write_splits(root, {"train": 6, "val": 2}, map_size=16, fields=FIELDS, maps_per_sim=4)


def job(out: Path, checkpoints: Path, shards) -> dict:
    return {
        "settings": settings(),
        "out": str(out),
        "train": [str(p) for p in shards["train"]],
        "val": [str(p) for p in shards["val"]],
        "options": RunOptions(
            checkpoint_dir=checkpoints, checkpoint_every_steps=EVERY, num_workers=0
        ).to_json(),
    }


def test_the_generator_commutes_with_periodic_shifts_of_its_noise():
    torch.manual_seed(0)
    generator = Generator(3, 6, 32, latent=4, width=8, depth=3, embed=8).eval()
    (shape,) = generator.latent_shapes(2)
    assert shape == (2, 4, 32, 32)  # white noise at the maps' resolution
    z = [torch.randn(shape)]
    p = torch.rand(2, 6)
    maps = generator(z, p)
    assert maps.shape == (2, 3, 32, 32)
    # Every layer is a circular convolution (the spectral filters too): shifting the noise by
    # any number of pixels shifts the maps by as many.
    for shift in ((1, -3), (5, 17)):
        rolled = generator([torch.roll(z[0], shift, dims=(-2, -1))], p)
        assert torch.allclose(rolled, torch.roll(maps, shift, dims=(-2, -1)), atol=1e-5)
    # A map depends on its own noise and parameters only, not on the rest of the batch.
    assert torch.allclose(generator([z[0][:1]], p[:1]), maps[:1], atol=1e-5)
    # FiLM and the filter gains start unconditional; the parameters change the maps once they
    # have learned anything (here: perturbed weights).
    assert torch.allclose(generator(z, 1 - p), maps, atol=1e-6)
    for module in generator.modules():
        if isinstance(module, (FiLMBlock, SpectralFilter)):
            layer = module.film if isinstance(module, FiLMBlock) else module.gain
            torch.nn.init.normal_(layer.weight, std=0.3)
    assert not torch.allclose(generator(z, p), generator(z, 1 - p))


def test_a_spectral_filter_starts_as_the_identity_and_shapes_the_spectrum():
    torch.manual_seed(0)
    layer = SpectralFilter(2, 4, 32)
    x, e = torch.randn(3, 2, 32, 32), torch.randn(3, 4)
    assert torch.allclose(layer(x, e), x, atol=1e-5)
    # A gain that falls with |k| reddens white noise: more power in the first bins.
    with torch.no_grad():
        layer.gain.bias.copy_(-torch.linspace(0, 3, FILTER_BASIS).repeat(2))
    matrix = binning_matrix(32)
    auto, _ = set_spectra(layer(x, e)[:, None], matrix, [])
    assert torch.all(auto[..., 1] > 5 * auto[..., -1])


def smooth_means(params: np.ndarray) -> np.ndarray:
    """Two 'fields' whose means depend non-linearly on the first two of three parameters, as
    the gas mass does on Omega_m and sigma_8 only; the third parameter is irrelevant."""
    p0, p1 = params[:, 0], params[:, 1]
    return np.stack([np.sin(3 * p0) + 0.5 * p1**2, np.exp(-p0) * (1 + p1)], axis=1)


def test_the_kernel_regression_interpolates_a_smooth_mean_and_ignores_an_idle_parameter():
    rng = np.random.default_rng(0)
    train, test = rng.random((120, 3)), rng.random((200, 3))
    fitted = fit_kernel_regression(train, smooth_means(train) + 1e-4 * rng.normal(size=(120, 2)), 0)
    module = KernelRegression(2, 3, len(train))
    load_kernel_regression(module, fitted)
    truth = smooth_means(test)
    predicted = module(torch.from_numpy(test)).numpy()
    # Between the anchors, well inside the range of the means (about 1) and beyond what a
    # plane through them gets.
    assert np.abs(predicted - truth).max() < 5e-3
    design = np.c_[np.ones(len(train)), train]
    plane = np.linalg.lstsq(design, smooth_means(train), rcond=None)[0]
    assert np.abs(np.c_[np.ones(len(test)), test] @ plane - truth).max() > 0.1
    # Automatic relevance: the idle parameter's length is many times the others'.
    lengths = 1 / fitted["inverse_lengths"]
    assert (lengths[:, 2] > 10 * lengths[:, :2].max(axis=1)).all()
    # Float32 parameters give float32 means of the float64 sum (large weights of both signs).
    single = module(torch.from_numpy(test).float())
    assert single.dtype == torch.float32
    assert np.allclose(single.numpy(), predicted, atol=1e-6)


def test_log_sampled_parameters_are_warped_to_their_log_range():
    # A_SN1 in [0.25, 4]: the value 1 is scaled to 0.2 and sits halfway in log; Omega_m stays.
    ratios = torch.from_numpy(log_ratios_of(["Omega_m", "A_SN1"]))
    scaled = torch.tensor([[0.0, 0.0], [0.3, 0.2], [1.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[0.0, 0.0], [0.3, 0.5], [1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(log_warp(scaled, ratios), expected, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_kernel_regression_is_the_gaussian_process_posterior_mean():
    """The torch module evaluates the Matern 5/2 posterior mean that scikit-learn predicts."""
    rng = np.random.default_rng(2)
    train, test = rng.random((40, 3)), rng.random((50, 3))
    values = smooth_means(train)[:, :1]
    module = KernelRegression(1, 3, len(train))
    load_kernel_regression(module, fit_kernel_regression(train, values, 0))
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
        np.ones(3), (1e-2, 1e3), nu=2.5
    ) + WhiteKernel(1e-4, (1e-6, 1.0))
    mean, scale = values.mean(), values.std()
    process = GaussianProcessRegressor(kernel, n_restarts_optimizer=RESTARTS, random_state=0)
    process.fit(train, (values[:, 0] - mean) / scale)
    expected = process.predict(test) * scale + mean
    assert np.allclose(module(torch.from_numpy(test)).numpy()[:, 0], expected, atol=1e-9)


def test_the_generator_scales_and_shifts_its_fluctuations_by_the_kernel_fits():
    torch.manual_seed(0)
    generator = Generator(2, 3, 16, latent=2, width=4, depth=2, embed=4, kernel_anchors=30).eval()
    z, p = [torch.randn(generator.latent_shapes(4)[0])], torch.rand(4, 3)
    fluctuation = generator(z, p)  # both fits zero: mean 0, scale exp(0) = 1
    train = np.random.default_rng(1).random((30, 3))
    load_kernel_regression(generator.mean, fit_kernel_regression(train, smooth_means(train), 0))
    log_scales = 0.3 * smooth_means(train)[:, ::-1]
    load_kernel_regression(generator.log_scale, fit_kernel_regression(train, log_scales, 0))
    mean, scale = generator.mean(p), generator.log_scale(p).exp()
    expected = fluctuation * scale[:, :, None, None] + mean[:, :, None, None]
    assert torch.allclose(generator(z, p), expected, atol=1e-5)
    assert mean.abs().min() > 0.1 and (scale - 1).abs().min() > 0.03  # real shifts and scales


def test_the_statistics_terms_measure_what_the_evaluation_measures():
    from astroflow.evaluation import fields as evaluation

    rng = np.random.default_rng(0)
    maps = rng.standard_normal((5, 3, 16, 16))
    maps[:, 1] += 0.5 * maps[:, 0]  # correlated fields
    expected = evaluation.set_spectra(maps, 25.0)
    pairs = evaluation.field_pairs(3)
    auto, cross = statistics.set_spectra(
        torch.from_numpy(maps), statistics.binning_matrix(16), pairs
    )
    ratio = auto.numpy() / expected["auto"]  # the same spectra up to one constant factor
    assert np.allclose(ratio, ratio.flat[0], rtol=1e-9)
    r = statistics.correlation(auto, cross, pairs).numpy()
    assert np.allclose(r, expected["r"], atol=1e-9)
    # Quantile means: exact for any sample size; their mean distance is the evaluation's W1
    # when there are as many quantiles as pixels.
    a, b = maps[:, 0].ravel(), maps[:, 2].ravel()
    q = statistics.exact_quantile_means(a, 64)
    assert np.allclose(q, statistics.quantile_means(torch.from_numpy(a), 64).numpy())
    assert np.isclose(q.mean(), a.mean())
    assert np.allclose(statistics.exact_quantile_means(a[:-3], 7).mean(), a[:-3].mean())
    w1 = np.abs(statistics.exact_quantile_means(a, a.size) - np.sort(b)).mean()
    assert w1 == pytest.approx(evaluation.pdf_distance(a, b))


def test_the_statistics_losses_vanish_on_the_simulations_own_maps():
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((8, 2, 16, 16)).astype(np.float32)
    sims = np.repeat([7, 3], 4)
    targets = statistics.simulation_targets(maps, sims)
    assert list(targets.sim_ids) == [3, 7]
    rows = targets.rows(torch.tensor([7, 3]))
    own = torch.from_numpy(maps).unflatten(0, (2, 4))
    for loss in statistics.statistics_losses(own, rows, targets):
        assert loss.item() < 1e-5
    swapped = statistics.statistics_losses(own, rows.flip(0), targets)
    assert all(loss.item() > 1e-3 for loss in swapped)
    with pytest.raises(KeyError, match="no targets"):
        targets.rows(torch.tensor([5]))


def test_the_learning_rates_follow_a_half_cosine():
    factor = LearningRateFactor("cosine", 100)
    assert factor(0) == 1.0 and factor(50) == pytest.approx(0.5) and factor(100) == 0.0
    assert LearningRateFactor("constant", 100)(70) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        LearningRateFactor("step", 100)


def test_the_critic_is_invariant_to_shifts_by_its_total_stride():
    torch.manual_seed(0)
    critic = Critic(3, 6, 32, widths=(4, 8, 8, 8)).eval()
    x, p = torch.randn(2, 3, 32, 32), torch.rand(2, 6)
    scores = critic(x, p)
    assert scores.shape == (2,)
    assert torch.allclose(critic(torch.roll(x, (8, 16), dims=(-2, -1)), p), scores, atol=1e-4)
    with pytest.raises(ValueError, match="widths"):
        Critic(3, 6, 32, widths=(4, 8))


def test_adversarial_losses_on_known_scores():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    critic, generator = adversarial_losses(real, fake, "hinge")
    assert critic.item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert generator.item() == pytest.approx(1.0)
    critic, generator = adversarial_losses(real, fake, "nonsaturating")
    softplus = torch.nn.functional.softplus
    assert critic.item() == pytest.approx((softplus(-real).mean() + softplus(fake).mean()).item())
    with pytest.raises(ValueError, match="unknown GAN loss"):
        adversarial_losses(real, fake, "wasserstein")


def test_the_ema_decay_warms_up_to_its_setting():
    from astroflow.families.gan2d.training import ema_decay

    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6) == 0.999


def test_instance_noise_decays_linearly_to_zero():
    family = Gan2dTraining()
    family.check(settings())
    family.total_steps = 100
    assert family.noise_std(0) == pytest.approx(0.1)
    assert family.noise_std(50) == pytest.approx(0.05)
    assert family.noise_std(100) == 0.0


def test_a_killed_gan2d_run_resumes_bitwise(tmp_path, shards):
    reference = tmp_path / "reference"
    summary = train(job(reference, tmp_path / "ref_ckpt", shards))
    assert summary["best_epoch"] >= 1
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"
    killed = attempt(job(out, checkpoints, shards), at=5)  # mid-epoch 2 (3 steps per epoch)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = torch.load(checkpoints / "step-000000003.pt", weights_only=True)["parts"]
    assert set(saved["networks"]) == set(saved["optimizers"]) == {"generator", "critic"}
    assert set(saved["ema"]) == {"generator"}

    finished = attempt(job(out, checkpoints, shards), at=-1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    expected, actual = assert_same_weights(reference / "model.pt", out / "model.pt")
    assert actual["run"]["resumed_at_steps"] == [3]
    assert set(expected["state_dict"]) == set(
        Generator(**expected["arch"]["generator"]).state_dict()
    )
    # The model file rebuilds the EMA generator through the family.
    network = get_family("gan2d").build_network(actual["arch"])
    network.load_state_dict(actual["state_dict"])


def test_two_gloo_processes_train_gan2d_with_the_r1_penalty(tmp_path, shards):
    """The DDP path: the critic's R1 gradient through the wrapped critic, the generator
    through the plain frozen one, EMA and validation on every rank."""
    from astroflow.train import train_job

    cfg = {**settings(), "epochs": 1, "r1_every": 1}
    out = tmp_path / "ddp"
    train_job(
        cfg,
        shards["train"],
        shards["val"],
        out / "model.pt",
        out / "log.csv",
        out / "tb",
        RunOptions(checkpoint_dir=tmp_path / "ckpt", num_workers=0, threads=2),
        gpus=2,
        log_path=out / "train.log",
    )
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["run"]["world_size"] == 2 and payload["run"]["backend"] == "gloo"
    assert all(torch.isfinite(t).all() for t in payload["state_dict"].values())


def skewed_simulations(params: np.ndarray, rng: np.random.Generator, n: int = 4096):
    """Pixels of log-normal fields whose skewness grows with the first parameter and whose
    mean the second moves: per simulation (S, n), then the quantile means and moments."""
    sigma = 0.2 + 0.8 * params[:, :1]
    pixels = np.exp(sigma * rng.standard_normal((len(params), n))) + params[:, 1:2]
    quantiles = statistics.exact_quantile_means(pixels, 64)[:, None]  # (S, 1, L)
    moments = np.stack([pixels.mean(axis=1), pixels.std(axis=1)])[:, :, None]  # (2, S, 1)
    return pixels, quantiles, moments


def test_the_quantile_map_interpolates_pixel_distributions_between_simulations():
    """Fitted on 40 simulations of log-normal pixels, it predicts the standardized quantile
    function at unseen parameters several times closer than the mean shape does."""
    rng = np.random.default_rng(0)
    train, test = rng.random((40, 2)), rng.random((10, 2))
    _, quantiles, moments = skewed_simulations(train, rng, 16384)
    fitted = fit_quantile_shapes(train, quantiles, moments, components=3, seed=0)
    module = QuantileMap(1, 2, 40, levels=64, components=3)
    load_quantile_map(module, fitted)
    _, truth, truth_moments = skewed_simulations(test, rng, 16384)
    truth = (truth[:, 0] - truth_moments[0]) / truth_moments[1]
    predicted = module.quantiles(torch.from_numpy(test)).numpy()[:, 0]
    error = np.abs(predicted - truth).mean(axis=1)
    baseline = np.abs(fitted["shape_mean"][0] - truth).mean(axis=1)
    assert np.median(error) < 0.25 * np.median(baseline)
    assert np.all(np.diff(predicted, axis=1) >= 0)  # a quantile function


def test_the_quantile_map_keeps_pixel_order_and_gives_the_predicted_distribution():
    """Gaussian maps moved onto a skewed quantile function: the same order of pixels, and
    the quantile means of the result are those of the function, about the given mean and
    scale."""
    rng = np.random.default_rng(1)
    _, quantiles, moments = skewed_simulations(np.array([[0.9, 0.0]]), rng, 65536)
    shape = (quantiles[0, 0] - moments[0, 0]) / moments[1, 0]
    module = QuantileMap(1, 2, 0, levels=64, components=1)
    module.shape_mean.copy_(torch.from_numpy(shape[None]))
    maps = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    params = torch.rand(3, 2, dtype=torch.float64)
    mean, scale = torch.tensor([[0.5]] * 3), torch.tensor([[2.0]] * 3)
    out = module(maps, params, mean, scale)
    assert torch.equal(out.flatten(1).argsort(), maps.flatten(1).argsort())
    for row in out.numpy():
        got = statistics.exact_quantile_means(row.ravel(), 64)
        assert np.abs(got - (0.5 + 2.0 * shape)).max() < 1e-9  # every interval's mean
        assert abs(row.mean() - 0.5) < 1e-9


def test_only_the_generator_in_eval_mode_applies_its_quantile_map():
    torch.manual_seed(0)
    generator = Generator(
        2,
        3,
        16,
        latent=2,
        width=4,
        depth=2,
        embed=4,
        kernel_anchors=30,
        shape_levels=16,
        shape_components=2,
    )
    z, p = [torch.randn(generator.latent_shapes(4)[0])], torch.rand(4, 3)
    generator.quantile_map.shape_mean.copy_(torch.linspace(-2, 2, 16).expand(2, 16))
    trained = generator.train()(z, p)
    product = generator.eval()(z, p)
    assert torch.equal(product.flatten(2).argsort(), trained.flatten(2).argsort())
    ordered = product.flatten(2).sort().values  # 16 pixels per level, its centre between two
    levels = (ordered[..., 7::16] + ordered[..., 8::16]) / 2
    assert torch.allclose(levels, torch.linspace(-2, 2, 16), atol=1e-6)
    assert not torch.allclose(product, trained, atol=0.1)
    with torch.no_grad():  # the products from the network's maps of one pass
        assert torch.equal(generator.map_pixels(trained, p), product)
    with pytest.raises(ValueError, match="shape_levels"):
        Generator(2, 3, 16, shape_levels=16, shape_components=0)
