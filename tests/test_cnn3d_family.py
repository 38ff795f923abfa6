"""cnn3d through the shared training engine: train-split scaling in the model file, learning
that beats the flat-profile baseline, the predictions, metrics and embeddings it writes, and
profile cubes of a real-looking FITS cube (frequency axis in Hz, other channels, a shift)."""

from __future__ import annotations

import csv
import json
import logging
import re

import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS
from cube_factory import tiny_config, write_frequency_cube

from astroflow.cluster import cluster
from astroflow.cubes.baseline import profile_metrics
from astroflow.cubes.dataset import CubeDataset
from astroflow.cubes.fits import FitsCubeError, write_shard_examples
from astroflow.cubes.params import PARAM_NAMES
from astroflow.cubes.scaling import fit_scaling
from astroflow.cubes.shards import read_cube_shard, write_cube_shard
from astroflow.embed import embed
from astroflow.families.cnn3d.products import predict_fits
from astroflow.infer import predict
from astroflow.maps.dataset import dihedral
from astroflow.modelfile import load_model, save_model
from astroflow.train import train_experiment

SETTINGS = {
    "model": "cnn3d",
    "epochs": 8,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "hidden": 32,
    "dropout": 0.0,
    "seed": 0,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cubes")
    config = tiny_config()
    return {
        "train": [
            write_cube_shard(config, "train", i, 32, 0, root / f"train{i}.h5") for i in (0, 1)
        ],
        "val": [write_cube_shard(config, "val", 0, 16, 0, root / "val.h5")],
        "test": [write_cube_shard(config, "test", 0, 16, 0, root / "test.h5")],
    }


@pytest.fixture(scope="module")
def run(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_experiment(
        SETTINGS, shards["train"], shards["val"], out / "model.pt", out / "log.csv", out / "tb"
    )
    metrics = predict(out / "model.pt", shards["test"], out / "predictions.h5", out / "m.json")
    return out, metrics


def test_loss_falls_and_the_model_file_holds_train_split_scaling(run, shards):
    out, _ = run
    with open(out / "log.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(rows) == 8 and losses[-1] < 0.7 * losses[0]
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["model"] == "cnn3d"
    assert payload["arch"] == {"n_channels": 24, "n_bins": 8, "hidden": 32, "dropout": 0.0}
    assert payload["normalization"] == fit_scaling(shards["train"]).to_dict()
    assert payload["normalization"] != fit_scaling(shards["train"] + shards["val"]).to_dict()
    assert payload["core_config"] == tiny_config().to_dict()
    assert payload["fields"] == ["N2H+"] and payload["params"] == []  # profiles, no parameters


def test_network_beats_the_flat_profile_baseline_on_held_out_cores(run):
    _, metrics = run
    assert metrics["n_cubes"] == 16
    assert metrics["ratio"]["density_rmse_dex"] < 0.8
    assert metrics["ratio"]["velocity_rmse_kms"] < 1.0
    assert metrics["network"]["density_r2"] > metrics["baseline"]["density_r2"] + 0.2


def test_predictions_are_physical_profiles_and_the_metrics_are_theirs(run, shards):
    out, metrics = run
    test = read_cube_shard(shards["test"][0])
    with h5py.File(out / "predictions.h5") as f:
        arrays = {key: f[key][...] for key in f if key not in ("params", "core_id")}
        assert f["density"].attrs["units"] == "cm-3" and f["velocity"].attrs["units"] == "km/s"
        np.testing.assert_array_equal(f["params"][...], test.params)
    assert arrays["density"].shape == arrays["velocity"].shape == (16, 8, 16, 16)
    assert (arrays["density"] > 0).all()
    np.testing.assert_array_equal(arrays["true_density"], test.density)
    np.testing.assert_allclose(arrays["bin_centers"], tiny_config().bin_centers_pc)
    network = profile_metrics(
        arrays["density"], arrays["velocity"], arrays["true_density"], arrays["true_velocity"]
    )
    assert metrics["network"] == pytest.approx(network, rel=1e-5)
    assert json.loads((out / "m.json").read_text()) == metrics
    ratio = metrics["network"]["velocity_rmse_kms"] / metrics["baseline"]["velocity_rmse_kms"]
    assert metrics["ratio"]["velocity_rmse_kms"] == pytest.approx(ratio)


def test_embeddings_are_one_row_per_cube_with_its_parameters(run, shards, tmp_path):
    out, _ = run
    embed(out / "model.pt", shards["test"], tmp_path / "emb.h5")
    with h5py.File(tmp_path / "emb.h5") as f:
        assert f["embeddings"].shape == (16, 32)
        np.testing.assert_allclose(
            f["params_raw"][...], read_cube_shard(shards["test"][0]).params, rtol=1e-6
        )
        assert list(f.attrs["param_names"]) == list(PARAM_NAMES)
    scores = cluster(
        tmp_path / "emb.h5",
        tmp_path / "clusters.json",
        n_clusters=3,
        pca_components=5,
        silhouette_sample=100,
        knn_neighbors=3,
        seed=0,
        knn_param="central_density",
    )
    assert -1.0 <= scores["knn_r2_central_density"] <= 1.0
    assert "knn_r2_omega_m" not in scores


def test_augmentation_turns_cube_and_profiles_together(shards):
    dataset = CubeDataset(shards["val"], fit_scaling(shards["train"]))
    x, y, core = dataset[3]
    for element in range(8):
        turned_x, turned_y, same = dataset[(3, element)]
        assert same == core
        torch.testing.assert_close(turned_x, dihedral(x, element))
        torch.testing.assert_close(turned_y, dihedral(y, element))
    batch = dataset[[(0, 5), (3, 2)]]
    assert batch.x.shape == (2, 24, 16, 16) and batch.y.shape == (2, 16, 16, 16)
    torch.testing.assert_close(batch.y[1], dihedral(y, 2))


def test_same_seed_gives_identical_weights(shards, tmp_path):
    weights = []
    for name in ("a", "b"):
        out = tmp_path / name
        settings = {**SETTINGS, "epochs": 2}
        train_experiment(
            settings, shards["val"], shards["test"], out / "m.pt", out / "l.csv", out / "tb"
        )
        weights.append(torch.load(out / "m.pt", weights_only=True)["state_dict"])
    for key, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][key]), key


def test_unknown_core_parameter_is_named(shards, tmp_path):
    with pytest.raises(ValueError, match=r"'params': \['Omega_m'\] are not core parameters"):
        train_experiment(
            {**SETTINGS, "params": ["Omega_m"]},
            shards["val"],
            shards["test"],
            tmp_path / "m.pt",
            tmp_path / "l.csv",
            tmp_path / "tb",
        )


@pytest.fixture(scope="module")
def observed(run, shards, tmp_path_factory):
    """Example 2 of the test shard as written (VRAD, km/s), and as an observatory might deliver
    it: FREQ in Hz about RESTFRQ, half-width channels over a wider band, moved by +5 km/s."""
    root = tmp_path_factory.mktemp("fits")
    example = write_shard_examples(shards["test"][0], root, 3)[2]
    observed = write_frequency_cube(example, root / "observed.fits", velocity_shift_kms=5.0)
    return example, observed


def test_predict_fits_of_a_frequency_cube_matches_its_velocity_original(run, observed, tmp_path):
    out, _ = run
    example, frequency_cube = observed
    reference = predict_fits(out / "model.pt", example, tmp_path / "d0.fits", tmp_path / "v0.fits")
    density, velocity = predict_fits(
        out / "model.pt",
        frequency_cube,
        tmp_path / "density.fits",
        tmp_path / "velocity.fits",
        velocity_offset_kms=5.0,
    )
    assert density.shape == velocity.shape == (8, 16, 16)
    # Rebinning half-width channels back to the training ones restores the spectra up to the
    # interpolation of the finer grid: the profiles agree to a few percent.
    assert np.median(np.abs(np.log10(density / reference[0]))) < 0.03
    # Velocities come back in the cube's frame: the source moved by +5 km/s, so do they.
    assert np.median(np.abs(velocity - 5.0 - reference[1])) < 0.03

    with fits.open(tmp_path / "density.fits") as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (8, 16, 16)
    np.testing.assert_allclose(data, density)
    assert header["BUNIT"] == "cm-3" and header["CTYPE3"] == "LOSDEPTH"
    assert header["CUNIT3"] == "pc" and "RESTFRQ" not in header
    assert header["CDELT3"] == pytest.approx(tiny_config().box_size_pc / 8)
    assert header["HIERARCH ASTROFLOW VOFFSET"] == 5.0
    sky, source = WCS(header).celestial, WCS(fits.getheader(frequency_cube)).celestial
    np.testing.assert_allclose(sky.wcs.crval, source.wcs.crval)
    np.testing.assert_allclose(sky.wcs.cdelt, source.wcs.cdelt)
    assert list(sky.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    assert fits.getheader(tmp_path / "velocity.fits")["BUNIT"] == "km/s"


def test_predict_fits_warns_about_another_pixel_scale(run, observed, tmp_path, caplog):
    out, _ = run
    example, _ = observed
    with fits.open(example) as hdul:
        hdul[0].header["CDELT1"] *= 2
        hdul[0].header["CDELT2"] *= 2
        hdul.writeto(tmp_path / "coarse.fits")
    with caplog.at_level(logging.WARNING, logger="astroflow.families.cnn3d.products"):
        predict_fits(
            out / "model.pt", tmp_path / "coarse.fits", tmp_path / "d.fits", tmp_path / "v.fits"
        )
    assert "trained on" in caplog.text and "arcsec" in caplog.text


def test_predict_fits_refuses_a_map_model(tmp_path, observed):
    from astroflow.models.cnn2d import MomentCNN2d

    net = MomentCNN2d(in_channels=1, n_params=2, map_size=16, hidden=4)
    meta = {
        "model": "cnn2d",
        "arch": {"in_channels": 1, "n_params": 2, "map_size": 16, "hidden": 4},
        "fields": ["Mgas"],
        "params": ["Omega_m", "sigma_8"],
        "settings": {},
    }
    save_model(tmp_path / "maps.pt", net.state_dict(), meta)
    with pytest.raises(ValueError, match="maps.pt: a cnn2d model, not a cube model"):
        predict_fits(tmp_path / "maps.pt", observed[0], tmp_path / "d.fits", tmp_path / "v.fits")


def test_reloaded_model_predicts_any_map_size(run):
    out, _ = run
    model, meta = load_model(out / "model.pt")
    with torch.no_grad():
        assert model(torch.zeros(1, 24, 20, 12)).shape == (1, 16, 20, 12)
    assert meta["core_config"]["n_channels"] == 24


def _line_velocity(out, cube, tmp_path) -> float:
    """Where centring puts the line of ``cube``: its intensity-weighted velocity (km/s)."""
    predict_fits(
        out / "model.pt", cube, tmp_path / "cd.fits", tmp_path / "cv.fits", center_on_emission=True
    )
    return fits.getheader(tmp_path / "cd.fits")["HIERARCH ASTROFLOW VOFFSET"]


def test_predict_fits_refuses_a_line_outside_the_training_channels(run, observed, tmp_path):
    out, _ = run
    example, shifted = observed  # the line moved by +5 km/s, the training channels span 4.8
    with pytest.raises(FitsCubeError, match="set cubes.velocity_offset_kms to about") as error:
        predict_fits(out / "model.pt", shifted, tmp_path / "d.fits", tmp_path / "v.fits")
    assert not (tmp_path / "d.fits").exists() and not (tmp_path / "v.fits").exists()
    # The advice is the shift plus the line's own velocity in the unshifted example (the
    # core's systemic velocity and the intensity-weighted turbulence, a few 0.1 km/s).
    suggested = float(re.search(r"to about (-?[0-9.]+)", str(error.value)).group(1))
    assert suggested == pytest.approx(5.0 + _line_velocity(out, example, tmp_path), abs=0.05)


def test_predict_fits_centred_on_the_emission_matches_the_right_offset(run, observed, tmp_path):
    out, _ = run
    example, shifted = observed
    # Centring finds the line of the frequency cube where it finds that of its velocity
    # original, moved by the 5 km/s shift; so it predicts as the offset set by hand does.
    offset = 5.0 + _line_velocity(out, example, tmp_path)
    by_hand = predict_fits(
        out / "model.pt",
        shifted,
        tmp_path / "d0.fits",
        tmp_path / "v0.fits",
        velocity_offset_kms=offset,
    )
    centred = predict_fits(
        out / "model.pt", shifted, tmp_path / "d.fits", tmp_path / "v.fits", center_on_emission=True
    )
    assert fits.getheader(tmp_path / "d.fits")["HIERARCH ASTROFLOW VOFFSET"] == pytest.approx(
        offset, abs=0.05
    )
    assert np.median(np.abs(np.log10(centred[0] / by_hand[0]))) < 0.03
    assert np.median(np.abs(centred[1] - by_hand[1])) < 0.05


def test_predict_fits_warns_about_a_cube_smaller_than_the_receptive_field(
    run, observed, tmp_path, caplog
):
    out, _ = run
    example, _ = observed
    with fits.open(example) as hdul:
        header = WCS(hdul[0].header)[:, 6:9, 6:9].to_header()
        for key in ("BUNIT", "RESTFRQ", "SPECSYS", "BMAJ", "BMIN"):
            header[key] = hdul[0].header[key]
        fits.PrimaryHDU(hdul[0].data[:, 6:9, 6:9], header).writeto(tmp_path / "small.fits")
    with caplog.at_level(logging.WARNING, logger="astroflow.families.cnn3d.products"):
        predict_fits(
            out / "model.pt", tmp_path / "small.fits", tmp_path / "d.fits", tmp_path / "v.fits"
        )
    assert "receptive field of 5 x 5" in caplog.text
