"""gan2d: a conditional GAN that emulates multifield maps at given parameters, judged against
the noise floor of its data and a two-point baseline (seed 001, arXiv 2402.10997)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.families.base import TRAINING_CURVES, Family, SettingError, check_fields
from astroflow.maps.cmd import PARAM_NAMES

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
            "default": 16,
            "description": "channels of the Gaussian latent field (map_size / 8 on a side)",
        },
        "width": {
            "type": "integer",
            "minimum": 1,
            "default": 16,
            "description": "w: generator widths 4w, 3w, 2w, w from the latent grid to full size",
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
    }
    runtime_settings = ()
    predicts = False
    embeds = False
    loss_label = "critic loss (validation: emulator score)"
    figures = (TRAINING_CURVES,)

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        check_fields(experiment["fields"], config["data"]["fields"])
        unknown = [p for p in experiment["params"] if p not in PARAM_NAMES]
        if unknown:
            raise SettingError("params", f"{unknown} are not CMD parameters {list(PARAM_NAMES)}")
        if config["data"]["map_size"] < 16:
            raise SettingError("model", "gan2d needs data.map_size >= 16")

    def training(self):
        from astroflow.families.gan2d.training import Gan2dTraining

        return Gan2dTraining()

    def build_network(self, arch):
        from astroflow.models.gan2d import Generator

        return Generator(**arch["generator"])


GAN2D = Gan2d()
