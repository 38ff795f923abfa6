"""cnn2d: maps of CMD fields in, posterior mean and standard deviation of parameters out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.families.base import (
    TRAINING_CURVES,
    TSNE,
    Family,
    Figure,
    SettingError,
    check_fields,
)
from astroflow.maps.cmd import PARAM_NAMES

FIELD_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}}

PREDICTIONS = Figure(
    "predictions",
    ("predictions.h5",),
    "Predicted posterior mean against the true value for every test map of experiment "
    "``{experiment}``, one panel per parameter, with the predicted standard deviation as error "
    "bars; the diagonal is a perfect prediction. R\\ :sup:`2` is given in each panel; for "
    "calibrated errors about 68% of the points lie within one error bar of the diagonal.",
    "Inference",
)


class Cnn2d(Family):
    name = "cnn2d"
    data = "maps"
    description = "moment network: posterior mean and std of parameters from maps"
    settings = {
        "fields": {
            **FIELD_LIST,
            "default": ["Mgas"],
            "description": "input channels, a subset of data.fields",
        },
        "params": {
            **FIELD_LIST,
            "default": ["Omega_m", "sigma_8"],
            "description": f"parameters to infer, of {list(PARAM_NAMES)}",
        },
        "hidden": {
            "type": "integer",
            "minimum": 1,
            "default": 16,
            "description": "width of the first conv block",
        },
        "dropout": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.2,
            "description": "dropout rate of the fully connected layers",
        },
    }
    loss_label = "moment loss"
    metric_columns = ("rmse", "r2", "mean_relative_error", "mean_sigma", "frac_within_1sigma")
    figures = (TRAINING_CURVES, PREDICTIONS, TSNE)

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        check_fields(experiment["fields"], config["data"]["fields"])
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not CMD parameters {list(PARAM_NAMES)}")

    def training(self):
        from astroflow.families.cnn2d.training import Cnn2dTraining

        return Cnn2dTraining()

    def build_network(self, arch):
        from astroflow.models.cnn2d import MomentCNN2d

        return MomentCNN2d(**arch)

    def predict(self, model, meta, model_path, shard_paths, out_h5, out_metrics, **loader):
        from astroflow.families.cnn2d.products import predict_maps

        return predict_maps(model, meta, model_path, shard_paths, out_h5, out_metrics, **loader)

    def embed(self, model, meta, model_path, shard_paths, out_h5, **loader):
        from astroflow.families.cnn2d.products import embed_maps

        embed_maps(model, meta, model_path, shard_paths, out_h5, **loader)

    def plot(self, figure, inputs, output, colour_by):
        if figure == PREDICTIONS.name:
            from astroflow.plots import plot_predictions

            plot_predictions(inputs[0], output)
        else:
            super().plot(figure, inputs, output, colour_by)


CNN2D = Cnn2d()
