"""gan2d: a conditional GAN that emulates multifield maps at given parameters, judged against
the noise floor of its data and a two-point baseline (seed 001, arXiv 2402.10997)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.families.base import (
    TRAINING_CURVES,
    Evaluation,
    Family,
    Figure,
    SettingError,
    check_fields,
)
from astroflow.maps.cmd import LH_RANGES, PARAM_NAMES

EMULATOR = Evaluation("emulator", splits=("test", "train"))
"""results/<experiment>/emulator.json (:mod:`astroflow.families.gan2d.evaluation`)."""

CATEGORY = "Emulator"
MAPS = Figure(
    "maps",
    ("emulator.json",),
    "Real (top) and generated (bottom) maps of experiment ``{experiment}`` at the parameters "
    "of test simulations, one column per field and simulation, on the colour scale of the real "
    "map (standardized log10; at most 128x128 pixels are shown). The generated maps should be "
    "indistinguishable by eye, not identical: their latents are not the simulation's initial "
    "conditions.",
    CATEGORY,
)
PK_RATIOS = Figure(
    "pk_ratios",
    ("emulator.json",),
    "P_gen(k)/P_real(k) of experiment ``{experiment}`` per field: median over the test "
    "simulations (line) and 16-84% range (band) for the generated maps, the noise floor (fresh "
    "maps of the same parameters, grey) and the two-point baseline (dashed). A generator "
    "inside the grey band is as close as the data allow; dotted bins are not well sampled.",
    CATEGORY,
)
PDFS = Figure(
    "pdfs",
    ("emulator.json",),
    "Pixel distributions of log10 of every field over all test maps of experiment "
    "``{experiment}``, real and generated; the W1 distances of the JSON summarize the gap.",
    CATEGORY,
)
CROSS = Figure(
    "cross_correlation",
    ("emulator.json",),
    "Cross-correlation coefficient r(k) of every field pair, averaged over the test "
    "simulations of experiment ``{experiment}``: real, generated, and the two-point baseline.",
    CATEGORY,
)
RECOVERY = Figure(
    "recovery",
    ("emulator.json",),
    "Parameters inferred by the cnn2d experiment named in ``recovery`` from the real (left "
    "points) and the generated test maps of experiment ``{experiment}`` against the truth, "
    "one panel per parameter with both R\\ :sup:`2`: a generator that encodes the parameters "
    "as the simulations do gives the same scatter.",
    CATEGORY,
)

NAMES = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}}


class Gan2d(Family):
    name = "gan2d"
    data = "maps"
    description = "conditional GAN emulator: multifield maps from a latent field and parameters"
    settings = {
        "fields": {
            **NAMES,
            "default": ["Mgas", "HI", "B"],
            "description": "generated channels, a subset of data.fields",
        },
        "params": {
            **NAMES,
            "default": list(PARAM_NAMES),
            "description": "parameters the maps are conditioned on (default: all six)",
        },
        "latent": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "channels of the Gaussian white-noise latent at the maps' resolution",
        },
        "width": {
            "type": "integer",
            "minimum": 1,
            "default": 32,
            "description": "channels of every generator block (all at full resolution)",
        },
        "depth": {
            "type": "integer",
            "minimum": 1,
            "default": 4,
            "description": "generator blocks (circular 3x3 convolution, FiLM, LeakyReLU)",
        },
        "critic_width": {
            "type": "integer",
            "minimum": 1,
            "default": 16,
            "description": "critic widths w, 2w, 4w, 4w, ... from full size down to 4x4",
        },
        "embed": {
            "type": "integer",
            "minimum": 1,
            "default": 64,
            "description": "size of the parameter embedding that drives the FiLM layers",
        },
        "loss": {
            "enum": ["hinge", "nonsaturating"],
            "default": "hinge",
            "description": "adversarial loss",
        },
        "critic_lr": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 0.0004,
            "description": "critic learning rate (lr is the generator's: two time scales)",
        },
        "lr_schedule": {
            "enum": ["constant", "cosine"],
            "default": "cosine",
            "description": "learning rates of both networks: constant, or a half cosine to 0",
        },
        "r1": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "gamma of the R1 penalty on real maps (0: none)",
        },
        "r1_every": {
            "type": "integer",
            "minimum": 1,
            "default": 4,
            "description": "steps between R1 penalties (lazy regularization)",
        },
        "ema": {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.999,
            "description": "decay of the EMA generator that every product uses",
        },
        "group_size": {
            "type": "integer",
            "minimum": 1,
            "default": 4,
            "description": "generated maps per training simulation in a step (the statistics "
            "terms compare each group with its simulation)",
        },
        "adversarial_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the critic's verdict in the generator loss",
        },
        "spectral_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the mean |ln P_gen - ln P_sim| of the auto spectra",
        },
        "correlation_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the mean |r_gen - r_sim| of the field pairs",
        },
        "pdf_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the W1 distance of the pixel distributions (quantiles)",
        },
        "mean_weight": {
            "type": "number",
            "minimum": 0,
            "default": 0.0,
            "description": "weight of the mean |pixel mean_gen - pixel mean_sim| per field (the "
            "shift part of the W1 distance)",
        },
        "shape_components": {
            "type": "integer",
            "minimum": 0,
            "default": 6,
            "description": "principal shapes of the fields' pixel distributions that a "
            "kernel regression interpolates between the training simulations; the products' "
            "pixels are moved in rank order onto them (0: the network's own distribution)",
        },
        "instance_noise": {
            "type": "number",
            "minimum": 0,
            "default": 0.0,
            "description": "std of the noise added to the critic's inputs, decaying to 0",
        },
        "augment": {
            "type": "boolean",
            "default": True,
            "description": "dihedral (D4) augmentation of the real maps",
        },
        "val_sims": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "validation simulations whose emulator score picks the saved epoch",
        },
        "recovery": {
            "type": "string",
            "default": "",
            "description": "cnn2d experiment whose model infers parameters from generated maps "
            "('': no recovery test)",
        },
        "samples": {
            "type": "object",
            "default": {},
            "propertyNames": {"pattern": "^[A-Za-z0-9_]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "params": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "array",
                            "minItems": len(PARAM_NAMES),
                            "maxItems": len(PARAM_NAMES),
                            "items": {"type": "number"},
                        },
                    },
                    "latin_hypercube": {"type": "integer", "minimum": 1},
                    "sims": {"type": "integer", "minimum": 1, "default": 1},
                },
            },
            "description": "sample sets {name: {params: [[six values], ...] or "
            "latin_hypercube: n, sims: simulations of 15 maps per row}}: "
            "results/<experiment>/samples/<name>.h5 and the CMD layout in samples/<name>/",
        },
        "baseline_neighbours": {
            "type": "integer",
            "minimum": 1,
            "default": 3,
            "description": "nearest training simulations whose mean spectra the two-point "
            "baseline uses",
        },
    }
    runtime_settings = ("recovery", "baseline_neighbours", "samples")
    predicts = False
    embeds = False
    loss_label = "critic loss (validation: emulator score)"
    evaluations = (EMULATOR,)
    figures = (TRAINING_CURVES, MAPS, PK_RATIOS, PDFS, CROSS, RECOVERY)

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        check_fields(experiment["fields"], config["data"]["fields"])
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not CMD parameters {list(PARAM_NAMES)}")
        if config["data"]["map_size"] < 16:
            raise SettingError("model", "gan2d needs data.map_size >= 16")
        recovery = experiment["recovery"]
        if recovery:
            other = config["experiments"].get(recovery)
            if other is None or other.get("model") != "cnn2d":
                raise SettingError("recovery", f"{recovery!r} is not a cnn2d experiment")
            missing = [f for f in other["fields"] if f not in experiment["fields"]]
            if missing:
                raise SettingError(
                    "recovery", f"cnn2d experiment {recovery!r} reads {missing}, not generated"
                )

        for name, table in experiment["samples"].items():
            check_sample_table(name, table)

    def samples(self, settings):
        return list(settings["samples"])

    def sample(self, name, model_path, out_h5, out_dir, *, settings, config, threads=None):
        from astroflow.families.gan2d.sampling import write_samples

        write_samples(
            name, model_path, out_h5, out_dir, settings=settings, config=config, threads=threads
        )

    def products(self, experiment, settings, context):
        products = super().products(experiment, settings, context)
        if not settings["recovery"]:
            products.remove(f"results/{experiment}/figures/{RECOVERY.name}.png")
        return products

    def evaluation_references(self, name, settings, config):
        if settings["recovery"]:
            return {"recovery_model": f"results/{settings['recovery']}/model.pt"}
        return {}

    def evaluate(self, name, inputs, output, *, settings, config, threads=None):
        from astroflow.families.gan2d.evaluation import evaluate_emulator

        if name != EMULATOR.name:
            return super().evaluate(
                name, inputs, output, settings=settings, config=config, threads=threads
            )
        return evaluate_emulator(inputs, output, settings=settings, config=config, threads=threads)

    def plot(self, figure, inputs, output, colour_by):
        from astroflow.families.gan2d import figures

        draw = {
            MAPS.name: figures.draw_maps,
            PK_RATIOS.name: figures.draw_pk_ratios,
            PDFS.name: figures.draw_pdfs,
            CROSS.name: figures.draw_cross_correlation,
            RECOVERY.name: figures.draw_recovery,
        }
        if figure in draw:
            draw[figure](inputs, output)
        else:
            super().plot(figure, inputs, output, colour_by)

    def training(self):
        from astroflow.families.gan2d.training import Gan2dTraining

        return Gan2dTraining()

    def build_network(self, arch):
        from astroflow.models.gan2d import Generator

        return Generator(**arch["generator"])


def check_sample_table(name: str, table: Mapping[str, Any]) -> None:
    """A sample set gives parameter rows one way, inside the LH ranges the generator knows."""
    key = f"samples.{name}"
    if ("params" in table) == ("latin_hypercube" in table):
        raise SettingError(key, "give either params (rows of six values) or latin_hypercube: n")
    for row in table.get("params", []):
        outside = [
            p
            for p, v in zip(PARAM_NAMES, row, strict=True)
            if not LH_RANGES[p][0] <= v <= LH_RANGES[p][1]
        ]
        if outside:
            raise SettingError(
                key, f"row {row}: {outside} outside the LH ranges the generator is trained on"
            )


GAN2D = Gan2d()
