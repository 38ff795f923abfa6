"""cnn3d: PPV cubes in, line-of-sight density and velocity profiles of every column out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.cubes.params import PARAM_NAMES
from astroflow.families.base import TRAINING_CURVES, TSNE, Family, Figure, SettingError

PROFILES = Figure(
    "profiles",
    ("predictions.h5",),
    "Line-of-sight profiles of H2 density (top, log axis) and velocity (bottom) for a few "
    "columns of the test cubes of experiment ``{experiment}``: the truth (black), the cnn3d "
    "prediction from the spectra (blue) and the flat-profile baseline of the moments (orange, "
    "dashed), against depth from the box mid-plane. The title gives the RMSE of network and "
    "baseline over every bin of every test column.",
    "Inference",
)
RESIDUAL_MAPS = Figure(
    "residual_maps",
    ("predictions.h5",),
    "Per-column residual maps for the first test cubes of experiment ``{experiment}``: the true "
    "mean log density, then the RMS over the line of sight of the log-density residual (dex) "
    "and of the velocity residual (km/s), for the cnn3d network and for the flat-profile "
    "baseline on the same colour scale. Darker is better; the network should be darker than "
    "the baseline, most of all in the dense cores.",
    "Inference",
)


class Cnn3d(Family):
    name = "cnn3d"
    data = "cubes"
    description = "profile network: density and velocity along every line of sight of a PPV cube"
    settings = {
        "params": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string"},
            "default": ["central_density", "infall_speed"],
            "description": "core parameters that describe the embeddings (t-SNE colours, KNN "
            f"score of the first), of {list(PARAM_NAMES)}",
        },
        "hidden": {
            "type": "integer",
            "minimum": 1,
            "default": 64,
            "description": "column features of the trunk",
        },
        "dropout": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.0,
            "description": "dropout rate before the profile head",
        },
    }
    runtime_settings = ("params",)  # they describe embeddings; the network predicts profiles
    loss_label = "profile loss"
    metric_rows = "profiles from"
    metric_columns = (
        "density_rmse_dex",
        "density_r2",
        "velocity_rmse_kms",
        "velocity_r2",
        "velocity_mae_kms",
    )
    figures = (TRAINING_CURVES, PROFILES, RESIDUAL_MAPS, TSNE)
    real_outputs = ("density", "velocity")

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not core parameters {list(PARAM_NAMES)}")

    def products(self, experiment, settings, context):
        products = super().products(experiment, settings, context)
        for name in context.get("real_cubes", ()):
            products += [f"results/{experiment}/real/{name}_{o}.fits" for o in self.real_outputs]
        return products

    def training(self):
        from astroflow.families.cnn3d.training import Cnn3dTraining

        return Cnn3dTraining()

    def build_network(self, arch):
        from astroflow.models.cnn3d import ProfileCNN3d

        return ProfileCNN3d(**arch)

    def predict(self, model, meta, model_path, shard_paths, out_h5, out_metrics, **loader):
        from astroflow.families.cnn3d.products import predict_profiles

        return predict_profiles(model, meta, model_path, shard_paths, out_h5, out_metrics, **loader)

    def embed(self, model, meta, model_path, shard_paths, out_h5, **loader):
        from astroflow.families.cnn3d.products import embed_cubes

        embed_cubes(model, meta, model_path, shard_paths, out_h5, **loader)

    def predict_real(self, model_path, data_path, outputs, *, config, threads=None):
        from astroflow.families.cnn3d.products import predict_fits

        predict_fits(
            model_path,
            data_path,
            outputs["density"],
            outputs["velocity"],
            velocity_offset_kms=config["cubes"]["velocity_offset_kms"],
            center_on_emission=config["cubes"]["center_on_emission"],
            threads=threads,
        )

    def plot(self, figure, inputs, output, colour_by):
        from astroflow.cubes import plots

        if figure == PROFILES.name:
            plots.plot_profiles(inputs[0], output)
        elif figure == RESIDUAL_MAPS.name:
            plots.plot_residual_maps(inputs[0], output)
        else:
            super().plot(figure, inputs, output, colour_by)


CNN3D = Cnn3d()
