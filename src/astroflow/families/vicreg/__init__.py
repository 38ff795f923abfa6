"""vicreg: self-supervised embeddings of maps from positive pairs (VICReg), judged by what
they encode: the parameters, or the nuisance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.families.base import (
    TRAINING_CURVES,
    TSNE,
    Evaluation,
    Family,
    Figure,
    SettingError,
    check_fields,
)
from astroflow.maps.cmd import PARAM_NAMES

FIELD_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}}
WEIGHT = {"type": "number", "minimum": 0}

EVALUATION = Evaluation(
    "evaluation",
    splits=("train", "val", "test"),
    inputs=("model.pt", "embeddings.h5", "tsne.parquet"),
)
EVOLUTION = Evaluation("evolution", splits=("test",), inputs=("model.pt",))

GALLERY = Figure(
    "cluster_gallery",
    ("clusters.json",),
    "Example test maps (first field) of every KMeans cluster of the embedding of "
    "``{experiment}``, one row per cluster, with the cluster's median parameters: what the "
    "clusters group, judged by eye.",
    "Embeddings",
    splits=("test",),
)
EVOLUTION_FIGURE = Figure(
    "embedding_evolution",
    ("evolution.json",),
    "Test embeddings of ``{experiment}`` from the encoder at intermediate epochs "
    "(``snapshot_epochs``) and at the end, mapped into one t-SNE frame and coloured by the "
    "first parameter: how the order of the embedding forms during training.",
    "Embeddings",
    coloured=True,
)


class VICReg(Family):
    name = "vicreg"
    data = "maps"
    description = (
        "self-supervised embedding (VICReg) from pairs of maps of one simulation or of two fields"
    )
    settings = {
        "fields": {
            **FIELD_LIST,
            "default": ["Mgas", "HI", "B"],
            "description": "input channels, a subset of data.fields (pairs: fields: exactly two)",
        },
        "params": {
            **FIELD_LIST,
            "default": list(PARAM_NAMES),
            "description": "parameters the embedding is judged by (probes, t-SNE colours)",
        },
        "pairs": {
            "enum": ["simulation", "fields"],
            "default": "simulation",
            "description": "positive pairs: two maps of one simulation, or one map in two fields",
        },
        "width": {
            "type": "integer",
            "minimum": 1,
            "default": 16,
            "description": "width of the encoder's first conv block (the cnn2d trunk)",
        },
        "embedding_dim": {
            "type": "integer",
            "minimum": 2,
            "default": 128,
            "description": "size of the embedding (the encoder output)",
        },
        "expander_dim": {
            "type": "integer",
            "minimum": 2,
            "default": 512,
            "description": "width of the expander MLP the loss acts on",
        },
        "invariance": {**WEIGHT, "default": 25.0, "description": "weight of the invariance term"},
        "variance": {**WEIGHT, "default": 25.0, "description": "weight of the variance term"},
        "covariance": {**WEIGHT, "default": 1.0, "description": "weight of the covariance term"},
        "warmup_epochs": {
            "type": "number",
            "minimum": 0,
            "default": 1,
            "description": "epochs of linear learning-rate warm-up before the cosine decay",
        },
        "collapse_threshold": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 0.9,
            "description": "stop when the validation variance term or the mean squared "
            "correlation of the expander outputs reaches this share of its maximum",
        },
        "snapshot_epochs": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "uniqueItems": True,
            "default": [],
            "description": "epochs whose encoder is kept for the embedding-evolution figure",
        },
        "compare_with": {
            "type": ["string", "null"],
            "default": None,
            "description": "a cnn2d experiment on the same fields whose supervised embedding "
            "the evaluation compares (null: none)",
        },
    }
    runtime_settings = ("compare_with",)
    predicts = False
    loss_label = "VICReg loss"
    figures = (TRAINING_CURVES, TSNE, GALLERY, EVOLUTION_FIGURE)
    evaluations = (EVALUATION, EVOLUTION)

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        check_fields(experiment["fields"], config["data"]["fields"])
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not CMD parameters {list(PARAM_NAMES)}")
        if experiment["pairs"] == "fields" and len(experiment["fields"]) != 2:
            raise SettingError("fields", "pairs: fields needs exactly two fields")
        late = [e for e in experiment["snapshot_epochs"] if e > experiment["epochs"]]
        if late:
            raise SettingError("snapshot_epochs", f"{late} are after the last epoch")
        other = experiment["compare_with"]
        if other is not None:
            reference = config["experiments"].get(other)
            if reference is None or reference["model"] != "cnn2d":
                raise SettingError("compare_with", f"{other!r} is not a cnn2d experiment")
            if sorted(reference["fields"]) != sorted(experiment["fields"]):
                raise SettingError(
                    "compare_with",
                    f"{other!r} reads fields {reference['fields']}, this experiment "
                    f"{experiment['fields']}: the comparison needs the same fields",
                )

    def evaluation_references(
        self, name: str, settings: Mapping[str, Any], config: Mapping[str, Any]
    ) -> dict[str, str]:
        other = settings.get("compare_with")
        if name == EVALUATION.name and other:
            return {"supervised_model": f"results/{other}/model.pt"}
        return {}

    def training(self):
        from astroflow.families.vicreg.training import VICRegTraining

        return VICRegTraining()

    def build_network(self, arch):
        from astroflow.models.vicreg import VICRegNet

        return VICRegNet(**arch)

    def embed(self, model, meta, model_path, shard_paths, out_h5, **loader):
        from astroflow.families.cnn2d.products import embed_maps

        embed_maps(model, meta, model_path, shard_paths, out_h5, **loader)

    def evaluate(self, name, inputs, output, *, settings, config, threads=None):
        from astroflow.families.vicreg import evaluation

        if name == EVALUATION.name:
            return evaluation.evaluate_embeddings(
                inputs, output, settings=settings, seed=config["seed"], threads=threads
            )
        if name == EVOLUTION.name:
            return evaluation.embedding_evolution(
                inputs, output, analysis=config["analysis"], seed=config["seed"], threads=threads
            )
        return super().evaluate(name, inputs, output, settings=settings, config=config)

    def plot(self, figure, inputs, output, colour_by):
        from astroflow.families.vicreg import figures
        from astroflow.plots import plot_tsne

        if figure == TSNE.name:  # every parameter, not only the first two
            plot_tsne(inputs[0], inputs[1], output, colour_by=list(colour_by))
        elif figure == GALLERY.name:
            figures.plot_cluster_gallery(inputs[0], inputs[1:], output)
        elif figure == EVOLUTION_FIGURE.name:
            figures.plot_evolution(inputs[0], output, colour_by)
        else:
            super().plot(figure, inputs, output, colour_by)


VICREG = VICReg()
