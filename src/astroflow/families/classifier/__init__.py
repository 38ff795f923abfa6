"""classifier: tell kinds of maps apart (seed 004's RACOON/PENGUIN): each map against its
phase-coupled counterpart, or the maps of several CMD suites; judged against a baseline that
sees only each map's power spectrum and one-point moments."""

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
from astroflow.maps.cmd import PARAM_NAMES, SYNTHETIC_SUITES

STRIDE_MULTIPLE = {"racoon": 64, "penguin": 64}
"""Map sizes racoon (three stride-4 convolutions) and penguin (six stride-2) take: multiples
of 64; the cnn2d trunk takes every power of two >= 16, which data.map_size always is."""

ROC = Figure(
    "roc",
    ("predictions.h5",),
    "ROC curves of experiment ``{experiment}`` on the test maps: the CNN against the "
    "logistic regression on each map's binned power spectrum and one-point moments, with the "
    "area under each curve. Both classes share P(k) and the pixel distribution map by map, so "
    "the baseline stays near the diagonal; a CNN above it uses the phase structure.",
    "Classification",
)
CONFUSION = Figure(
    "confusion",
    ("metrics.json",),
    "Confusion matrices of experiment ``{experiment}`` on the test maps (rows: true class, "
    "columns: predicted class at probability 0.5), counts and row fractions, for the CNN and "
    "for the P(k)-and-moments baseline.",
    "Classification",
)
CONFIDENT_MAPS = Figure(
    "confident_maps",
    ("predictions.h5",),
    "Test maps of experiment ``{experiment}`` that the CNN is most and least sure of, per true "
    "class, with the probability it gives the true class: what the network keys on, and "
    "which maps confuse it.",
    "Classification",
)


class Classifier(Family):
    name = "classifier"
    data = "maps"
    description = "map classifier: phase-coupled counterparts of equal P(k), or CMD suites"
    settings = {
        "arch": {
            "enum": ["racoon", "penguin", "cnn2d"],
            "default": "racoon",
            "description": "racoon (3 stride-4 convolutions), penguin (6 stride-2) or cnn2d "
            "(the moment network's circular trunk)",
        },
        "layer_param": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "p: widths p, 4p, 8p (racoon), p..10p (penguin), first block (cnn2d)",
        },
        "dropout": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.2,
            "description": "dropout of the fully connected layers",
        },
        "fields": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string"},
            "default": ["Mgas"],
            "description": "input channels, a subset of data.fields",
        },
        "classes": {
            "enum": ["phase", "suites"],
            "default": "phase",
            "description": "phase: each map against its counterpart of the same P(k) and PDF; "
            "suites: the maps of the CMD suites listed in 'suites'",
        },
        "suites": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9]+$"},
            "uniqueItems": True,
            "default": [],
            "description": "classes: suites - two or more CMD suites, e.g. [IllustrisTNG, SIMBA]",
        },
        "strength": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "flow of the counterparts in pixels: 0 identical, larger easier",
        },
        "params": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string"},
            "default": ["Omega_m"],
            "description": "simulation parameters that describe the embeddings besides the class",
        },
    }
    runtime_settings = ("params",)
    loss_label = "cross-entropy"
    metric_rows = "classifier"
    metric_columns = ("accuracy", "roc_auc", "brier")
    figures = (TRAINING_CURVES, ROC, CONFUSION, CONFIDENT_MAPS, TSNE)
    sweep_metrics = {
        "CNN test accuracy": "network.accuracy",
        "P(k) + moments baseline": "baseline.accuracy",
    }
    sweep_reference = ("chance", 0.5)

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        check_fields(experiment["fields"], config["data"]["fields"])
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not CMD parameters {list(PARAM_NAMES)}")
        if experiment["classes"] == "suites":
            suites = experiment["suites"]
            if len(suites) < 2:
                raise SettingError("suites", f"classes: suites needs two or more, got {suites}")
            if config["data"]["source"] == "synthetic":
                unknown = [s for s in suites if s not in SYNTHETIC_SUITES]
                if unknown:
                    raise SettingError(
                        "suites", f"{unknown} have no synthetic model; known: {SYNTHETIC_SUITES}"
                    )
        elif experiment["suites"]:
            raise SettingError("suites", "applies to classes: suites only")
        multiple = STRIDE_MULTIPLE.get(experiment["arch"])
        size = config["data"]["map_size"]
        if multiple and size % multiple:
            raise SettingError(
                "arch",
                f"{experiment['arch']} reduces maps {multiple}-fold, so data.map_size must be a "
                f"multiple of {multiple}, got {size}; use arch cnn2d for smaller maps",
            )

    def suites(self, settings: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
        if settings["classes"] == "suites":
            return list(settings["suites"])
        return super().suites(settings, config)

    def items(self, split: str, settings: Mapping[str, Any], config: Mapping[str, Any]) -> int:
        maps = super().items(split, settings, config)
        # Phase classes: every map and its counterpart are two items.
        return 2 * maps if settings["classes"] == "phase" else maps

    def descriptive_params(self, settings: Mapping[str, Any]) -> list[str]:
        return ["class", *settings["params"]]

    def training(self):
        from astroflow.families.classifier.training import ClassifierTraining

        return ClassifierTraining()

    def build_network(self, arch):
        from astroflow.families.classifier.networks import build_classifier

        return build_classifier(**arch)

    def predict(self, model, meta, model_path, shard_paths, out_h5, out_metrics, **loader):
        from astroflow.families.classifier.products import predict_classes

        return predict_classes(model, meta, model_path, shard_paths, out_h5, out_metrics, **loader)

    def embed(self, model, meta, model_path, shard_paths, out_h5, **loader):
        from astroflow.families.classifier.products import embed_classes

        embed_classes(model, meta, model_path, shard_paths, out_h5, **loader)

    def plot(self, figure, inputs, output, colour_by):
        from astroflow.families.classifier import figures

        if figure == ROC.name:
            figures.draw_roc(inputs[0], output)
        elif figure == CONFUSION.name:
            figures.draw_confusion(inputs[0], output)
        elif figure == CONFIDENT_MAPS.name:
            figures.draw_confident_maps(inputs[0], output)
        else:
            super().plot(figure, inputs, output, colour_by)


CLASSIFIER = Classifier()
