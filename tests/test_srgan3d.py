"""The srgan3d family: network shapes and periodicity, tiled inference equal to one pass,
gradient checkpointing, a SIGKILLed training that resumes bitwise, and superres.json."""

import json
import signal

import numpy as np
import pytest
import torch
from resume_harness import assert_same_weights, attempt, last_log_row, train

from astroflow.engine.options import RunOptions
from astroflow.families.srgan3d.evaluation import evaluate_superres
from astroflow.families.srgan3d.inference import superresolve, tricubic, trilinear
from astroflow.families.srgan3d.spectral import binned_power, shell_index, spectral_loss
from astroflow.families.srgan3d.validation import compare_channel
from astroflow.models.srgan3d import Critic, Generator
from astroflow.volumes.resample import project_resolved, spectral_upsample
from astroflow.volumes.settings import VolumeConfig
from astroflow.volumes.shards import write_volume_shard
from astroflow.volumes.synthetic import synthesize_pair

EVERY = 2
# A tiny srgan3d experiment for the kill-and-resume test.
SETTINGS = {
    "model": "srgan3d",
    "epochs": 3,
    "batch_size": 2,
    "lr": 0.001,
    "weight_decay": 0.0,
    "seed": 11,
    "crop": 8,
    "crops_per_volume": 2,
    "width": 8,
    "critic_width": 4,
    "critic_steps": 2,
    "r1_gamma": 1.0,
    "adversarial_weight": 1.0,
    "supervised_weight": 10.0,
    "supervised": "coarse",
    "spectral_weight": 1.0,
    "spectral_k_min": 1.0,
    "spectral_skip": True,
    "keep_resolved": True,
    "warmup_steps": 3,
    "ema_decay": 0.9,
    "checkpointing": False,
    "tile": 8,
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noisy_generator(factor: int, seed: int = 0, spectral: bool = False) -> Generator:
    """A random generator whose noise injection is switched on (it starts at zero)."""
    torch.manual_seed(seed)
    generator = Generator(4, factor, width=8, spectral=spectral)
    for inject in generator.noise:
        torch.nn.init.normal_(inject.weight)
    return generator.eval()


@pytest.mark.parametrize("factor", [2, 4])
def test_shapes_and_the_least_padding_that_covers_the_output(factor):
    generator = noisy_generator(factor)
    p = generator.padding
    out = generator(torch.randn(2, 4, 6 + 2 * p, 6 + 2 * p, 6 + 2 * p))
    assert out.shape == (2, 4, 6 * factor, 6 * factor, 6 * factor)
    generator.padding = p - 1  # one voxel less of context cannot give the whole output
    with pytest.raises(RuntimeError):
        generator(torch.randn(1, 4, 6 + 2 * p, 6 + 2 * p, 6 + 2 * p))
    critic = Critic(4, width=4)
    side = 6 * factor // 8  # three stride-2 convolutions
    assert critic(out, out).shape == (2, side**3)


@pytest.mark.parametrize("factor,spectral", [(2, False), (4, False), (2, True), (4, True)])
def test_tiled_inference_equals_one_pass(factor, spectral):
    """Tiles padded from their periodic neighbours, noise (and the spectral skip path) cut
    from whole-volume fields: stitched output equals one pass over the volume to float
    rounding (1e-5 relative)."""
    generator = noisy_generator(factor, spectral=spectral)
    low, _ = synthesize_pair(VolumeConfig(grid_size=16 * factor, factor=factor), seed=2)
    low = (low - low.mean(axis=(1, 2, 3), keepdims=True)) / low.std(axis=(1, 2, 3), keepdims=True)
    single = superresolve(generator, low, tile=16, seed=5, keep_resolved=spectral)
    tiled = superresolve(generator, low, tile=4, seed=5, keep_resolved=spectral)
    scale = np.abs(single).max()
    np.testing.assert_allclose(tiled, single, rtol=0, atol=1e-5 * scale)
    assert not np.allclose(superresolve(generator, low, tile=4, seed=6), single)  # noise acts


def scaled_pair(factor: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic pair with the density as its logarithm (the networks' units up to a linear
    map per channel)."""
    low, high = synthesize_pair(VolumeConfig(grid_size=16 * factor, factor=factor), seed=seed)
    low[0], high[0] = np.log(low[0]), np.log(high[0])
    return low, high


@pytest.mark.parametrize("factor", [2, 4])
def test_spectral_upsampling_holds_exactly_the_modes_the_input_resolves(factor):
    low, high = scaled_pair(factor, seed=7)
    up = spectral_upsample(low, factor)
    assert up.shape == high.shape
    scale = np.abs(high).max(axis=(1, 2, 3), keepdims=True)
    # The truth's resolved modes are the input's: projecting the truth onto them changes
    # nothing, and the truth minus the upsampled input holds none of them but the mean (of
    # the log density: see resample.py).
    np.testing.assert_allclose(project_resolved(high, low, factor) / scale, high / scale, atol=1e-4)
    residual = high - up
    unresolved = project_resolved(residual, np.zeros_like(low), factor)
    np.testing.assert_allclose(unresolved / scale, residual / scale, atol=1e-4)
    # ... while trilinear upsampling loses part of them.
    assert np.abs(project_resolved(high, low, factor) - trilinear(low, factor)).max() > 0.1 * (
        scale.max()
    )


@pytest.mark.parametrize("spectral", [False, True])
def test_the_product_keeps_the_input_modes_below_the_nyquist_frequency(spectral):
    generator = noisy_generator(2, spectral=spectral)
    low, _ = scaled_pair(2, seed=8)
    out = superresolve(generator, low, tile=8, seed=1, keep_resolved=True)
    raw = superresolve(generator, low, tile=8, seed=1)
    n = out.shape[-1]
    k = np.fft.fftfreq(n, 1.0 / n)
    kk = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + np.arange(n // 2 + 1) ** 2)
    inside, beyond = (kk > 0) & (kk < n / 4), kk >= n / 4  # n / 4: the input's Nyquist
    expected = np.fft.rfftn(spectral_upsample(low, 2), axes=(1, 2, 3))[:, inside]
    actual = np.fft.rfftn(out, axes=(1, 2, 3))
    np.testing.assert_allclose(actual[:, inside], expected, atol=1e-3 * np.abs(expected).max())
    # Beyond it and in the mean, the output is the generator's.
    generated = np.fft.rfftn(raw, axes=(1, 2, 3))
    scale = np.abs(generated).max()
    np.testing.assert_allclose(actual[:, beyond], generated[:, beyond], atol=1e-4 * scale)
    np.testing.assert_allclose(actual[:, 0, 0, 0], generated[:, 0, 0, 0], atol=1e-4 * scale)
    assert not np.allclose(actual[:, inside], generated[:, inside], atol=1e-3 * scale)


def test_a_spectral_generator_needs_its_skip_path():
    generator = noisy_generator(2, spectral=True)
    side = 4 + 2 * generator.padding
    with pytest.raises(ValueError, match="skip path"):
        generator(torch.zeros(1, 4, side, side, side))


def test_output_moves_with_a_periodic_shift_of_the_input():
    generator = noisy_generator(2)
    for inject in generator.noise:  # the deterministic part: the noise is tied to the box
        torch.nn.init.zeros_(inject.weight)
    low = np.random.default_rng(0).standard_normal((4, 8, 8, 8)).astype(np.float32)
    out = superresolve(generator, low, tile=4)
    shifted = superresolve(generator, np.roll(low, (3, -1, 5), axis=(1, 2, 3)), tile=4)
    np.testing.assert_allclose(shifted, np.roll(out, (6, -2, 10), axis=(1, 2, 3)), atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        generator = Generator(4, 4, width=8, checkpointing=checkpointing)
        torch.nn.init.normal_(generator.noise[0].weight)
        x = torch.randn(1, 4, 12, 12, 12, generator=torch.Generator().manual_seed(1))
        noise = generator.draw_noise(1, 12 - 2 * generator.padding, x, torch.Generator())
        generator(x, noise).square().mean().backward()
        grads.append([p.grad.clone() for p in generator.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_interpolation_baselines_keep_the_resolved_field():
    low, high = synthesize_pair(VolumeConfig(grid_size=32, factor=2), seed=4)
    for upsampled in (trilinear(low, 2), tricubic(low, 2)):
        assert upsampled.shape == high.shape
        # Block averages of the upsampled field reproduce the input to interpolation error.
        blocks = upsampled[1].reshape(16, 2, 16, 2, 16, 2).mean(axis=(1, 3, 5))
        assert np.corrcoef(blocks.ravel(), low[1].ravel())[0, 1] > 0.98


def test_the_truth_scores_perfectly_and_interpolation_does_not():
    low, high = synthesize_pair(VolumeConfig(grid_size=32, factor=2), seed=4)
    k_nyquist = np.pi * 16 / 64.0
    report = compare_channel(
        high[None, 1],
        {"truth": high[None, 1], "trilinear": trilinear(low, 2)[None, 1]},
        64.0,
        k_nyquist,
    )
    assert report["scores"]["truth"]["power_error_small_scales"] == pytest.approx(0, abs=1e-12)
    assert report["scores"]["truth"]["r_min_resolved"] == pytest.approx(1)
    assert report["scores"]["trilinear"]["power_error_small_scales"] > 0.5
    assert any(report["small_scales"])


def test_spectral_loss_is_the_squared_log_power_ratio_per_shell():
    torch.manual_seed(0)
    real = torch.randn(3, 4, 16, 16, 16)
    assert spectral_loss(real, real).item() == 0.0
    # Scaling a field by a scales its power by a^2 in every shell: (2 ln a)^2.
    assert spectral_loss(3.0 * real, real).item() == pytest.approx((2 * np.log(3.0)) ** 2, 1e-5)
    tapered = spectral_loss(3.0 * real, real, taper=True).item()
    assert tapered == pytest.approx((2 * np.log(3.0)) ** 2, 1e-5)
    scale = torch.tensor([1.0, 2.0, 0.5, 1.0]).view(1, 4, 1, 1, 1)
    expected = np.mean([(2 * np.log(a)) ** 2 for a in (1.0, 2.0, 0.5, 1.0)])
    assert spectral_loss(scale * real, real, k_min=4).item() == pytest.approx(expected, 1e-5)
    # A plane wave of 2 crop fundamentals changes only the shells up to 4 fundamentals.
    z = torch.arange(16.0).view(16, 1, 1)
    wave = real + 5.0 * torch.cos(2 * np.pi * 2 * z / 16)
    assert spectral_loss(wave, real).item() > 0.01
    assert spectral_loss(wave, real, k_min=4).item() == pytest.approx(0.0, abs=1e-10)
    # The shell average of white noise's power is the variance times the voxels.
    index, shells = shell_index(16)
    power = binned_power(real, index, shells) / (3 * 16**3)
    assert power.shape == (4, 8) and torch.allclose(power, torch.ones(4, 8), atol=0.3)
    fake = real.clone().requires_grad_(True)
    spectral_loss(1.5 * fake, real, k_min=4).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("volumes")
    settings = {"grid_size": 32, "factor": 2}
    return {
        split: [str(write_volume_shard(settings, split, 0, n, 3, root / f"{split}.h5"))]
        for split, n in (("train", 2), ("val", 1), ("test", 1))
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shards):
    out = tmp_path_factory.mktemp("reference")
    options = RunOptions(checkpoint_dir=out / "ckpt", checkpoint_every_steps=EVERY).to_json()
    train({"settings": SETTINGS, "out": str(out), "options": options, **shards})
    return out


def test_a_killed_srgan3d_run_resumes_bitwise(tmp_path, shards, reference):
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"
    options = RunOptions(checkpoint_dir=checkpoints, checkpoint_every_steps=EVERY).to_json()
    job = {"settings": SETTINGS, "out": str(out), "options": options, **shards}
    # 2 steps per epoch: step 5 is mid-epoch 3, after the warm-up; newest checkpoint step 4.
    killed = attempt(job, at=5)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = torch.load(checkpoints / "step-000000004.pt", weights_only=True)["parts"]
    assert set(saved["networks"]) == {"generator", "critic"} and set(saved["ema"]) == {"generator"}
    finished = attempt(job, at=-1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    _, actual = assert_same_weights(reference / "model.pt", out / "model.pt")
    assert actual["run"]["resumed_at_steps"] == [4]
    assert last_log_row(out / "log.csv", 4) == last_log_row(reference / "log.csv", 4)


def test_superres_json_scores_every_channel_against_both_baselines(tmp_path, shards, reference):
    result = evaluate_superres(
        reference / "model.pt",
        shards["test"],
        tmp_path / "superres.json",
        tile=4,
        seed=0,
        keep_resolved=True,
    )
    assert json.loads((tmp_path / "superres.json").read_text()) == result
    assert list(result["channels"]) == ["density", "vx", "vy", "vz"]
    assert result["inference"]["volume_over_crop"] == 8.0
    assert result["inference"]["peak_memory_rise_mb"] >= 0
    for channel in result["channels"].values():
        assert set(channel["power"]) == {"output", "trilinear", "tricubic", "spectral"}
        k_f = 2 * np.pi / 64  # the fundamental; the first bin averages |k| of 1 and sqrt 2
        assert len(channel["k"]) == 16 and k_f < channel["k"][0] < 1.5 * k_f
        assert set(channel["pdf"]) == {"edges", "truth", "output", "trilinear"}
        assert channel["scores"]["trilinear"]["power_error_small_scales"] > 0.5
    # keep_resolved: the velocities' modes below the low-resolution Nyquist frequency are the
    # input's spectral interpolation, whatever the network learned.
    for name in ("vx", "vy", "vz"):
        scores = result["channels"][name]["scores"]
        assert scores["output"]["r_min_resolved"] == pytest.approx(
            scores["spectral"]["r_min_resolved"], abs=1e-5
        )
    assert isinstance(result["done"], bool)
