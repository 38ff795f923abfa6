"""srgan3d: low-resolution volumes in, high-resolution volumes out (map2map-style)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astroflow.families.base import TRAINING_CURVES, Evaluation, Family, Figure, SettingError

SUPERRES = Evaluation("superres", splits=("test",), inputs=("model.pt",))
POWER_SPECTRA = Figure(
    "power_spectra",
    ("superres.json",),
    "Power spectra of the held-out test volumes of experiment ``{experiment}``, one column per "
    "channel (densities as contrasts): the truth (black), the srgan3d output (blue) and the "
    "trilinear and tricubic upsampling of the input (dashed) and its spectral (FFT) "
    "interpolation in log density (purple: the spectral skip path alone), from the fundamental "
    "to the high-resolution Nyquist frequency; the dotted line is the low-resolution Nyquist "
    "frequency. The middle row is the ratio to the truth (grey band: ±10%, shaded k: the "
    "small scales where interpolation holds less than half the power, which the network must "
    "supply); the bottom row the cross-correlation coefficient r(k) with the truth, which "
    "should stay near 1 where the input resolves the modes.",
    "Super-resolution",
)
PDFS = Figure(
    "pdfs",
    ("superres.json",),
    "One-point distributions of every channel in the test volumes of experiment "
    "``{experiment}`` (log10 density, velocities in km/s): truth, srgan3d output and trilinear "
    "upsampling. Interpolation narrows the distribution; the output should match the truth's "
    "width and tails.",
    "Super-resolution",
)
SLICES = Figure(
    "slices",
    ("model.pt",),
    "Middle slices of the first test volume of experiment ``{experiment}``, one row per "
    "channel: the low-resolution input, its trilinear upsampling, the srgan3d output and the "
    "high-resolution truth, on one colour scale per row. The output should have the truth's "
    "small-scale texture where the upsampling is smooth, and its large-scale pattern.",
    "Super-resolution",
    splits=("test",),
)


class Srgan3d(Family):
    name = "srgan3d"
    data = "volumes"
    description = (
        "3D super-resolution GAN: low-resolution volumes of several channels to a finer grid"
    )
    settings = {
        "crop": {
            "type": "integer",
            "minimum": 2,
            "default": 8,
            "description": "training crop side in low-resolution voxels (the high-resolution "
            "crop is factor times larger, at least 16)",
        },
        "crops_per_volume": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "random crops per training volume in one epoch",
        },
        "width": {
            "type": "integer",
            "minimum": 4,
            "default": 32,
            "description": "generator features at low resolution (halved per factor of two)",
        },
        "critic_width": {
            "type": "integer",
            "minimum": 2,
            "default": 16,
            "description": "critic features of the first layer (doubled per stride)",
        },
        "critic_steps": {
            "type": "integer",
            "minimum": 1,
            "default": 2,
            "description": "critic steps per generator step",
        },
        "r1_gamma": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the R1 gradient penalty on real crops",
        },
        "adversarial_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the adversarial term of the generator loss",
        },
        "supervised_weight": {
            "type": "number",
            "minimum": 0,
            "default": 10.0,
            "description": "weight of the supervised (mean squared error) term",
        },
        "supervised": {
            "enum": ["coarse", "full"],
            "default": "coarse",
            "description": "supervised term on block averages over factor^3 voxels (coarse: "
            "leaves unresolved scales to the critic) or on the full fields",
        },
        "spectral_weight": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "weight of the spectral term: mean squared log ratio of the binned "
            "power of the residuals of output and truth crops from the skip path per channel "
            "(densities in linear units), on the shells above spectral_k_min times the "
            "low-resolution Nyquist frequency (0: off)",
        },
        "spectral_k_min": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "the spectral term's shells start above this fraction of the "
            "low-resolution Nyquist frequency (1: the unresolved scales only)",
        },
        "spectral_skip": {
            "type": "boolean",
            "default": False,
            "description": "skip path: the spectral (FFT) interpolation of the whole periodic "
            "input instead of the trilinear upsampling of the crop",
        },
        "keep_resolved": {
            "type": "boolean",
            "default": True,
            "description": "the product's modes below the low-resolution Nyquist frequency "
            "are the input's (spectral interpolation, in scaled units), not the generator's",
        },
        "warmup_steps": {
            "type": "integer",
            "minimum": 0,
            "default": 50,
            "description": "first steps that train the generator on the supervised term only",
        },
        "ema_decay": {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.99,
            "description": "decay of the EMA generator (the product)",
        },
        "checkpointing": {
            "type": "boolean",
            "default": False,
            "description": "gradient checkpointing of the generator's high-resolution blocks",
        },
        "tile": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "inference tile side in low-resolution voxels (divides the volume "
            "side; memory grows as its cube)",
        },
    }
    runtime_settings = ("tile",)  # products only; validation tiles by the crop
    predicts = False
    embeds = False
    loss_label = "coarse-scale MSE (scaled units)"
    figures = (TRAINING_CURVES, POWER_SPECTRA, PDFS, SLICES)
    evaluations = (SUPERRES,)

    def items(self, split: str, settings: Mapping[str, Any], config: Mapping[str, Any]) -> int:
        count = super().items(split, settings, config)
        return count * settings["crops_per_volume"] if split == "train" else count

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        volumes = config["volumes"]
        coarse = volumes["grid_size"] // volumes["factor"]
        if experiment["crop"] > coarse:
            raise SettingError(
                "crop",
                f"{experiment['crop']} exceeds the {coarse} low-resolution voxels of a volume",
            )
        if experiment["crop"] * volumes["factor"] < 16:
            raise SettingError(
                "crop",
                f"{experiment['crop']} x factor {volumes['factor']} is below the critic's 16 "
                "voxels",
            )
        if coarse % min(experiment["tile"], coarse):
            raise SettingError("tile", f"{experiment['tile']} does not divide {coarse}")

    def training(self):
        from astroflow.families.srgan3d.training import Srgan3dTraining

        return Srgan3dTraining()

    def build_network(self, arch):
        from astroflow.models.srgan3d import Generator

        return Generator(
            arch["channels"],
            arch["factor"],
            arch["width"],
            arch["checkpointing"],
            arch.get("spectral", False),  # model files from before the spectral skip path
        )

    def evaluate(self, name, inputs, output, *, settings, config, threads=None):
        from astroflow.families.srgan3d.evaluation import evaluate_superres

        if name != SUPERRES.name:
            return super().evaluate(
                name, inputs, output, settings=settings, config=config, threads=threads
            )
        return evaluate_superres(
            inputs["model"][0],
            inputs["test"],
            output,
            tile=settings["tile"],
            seed=config["seed"],
            threads=threads,
            keep_resolved=settings["keep_resolved"],
        )

    def plot(self, figure, inputs, output, colour_by):
        from astroflow.families.srgan3d import figures

        if figure == POWER_SPECTRA.name:
            figures.plot_power_spectra(inputs[0], output)
        elif figure == PDFS.name:
            figures.plot_pdfs(inputs[0], output)
        elif figure == SLICES.name:
            figures.plot_slices(inputs[0], inputs[1:], output)
        else:
            super().plot(figure, inputs, output, colour_by)


SRGAN3D = Srgan3d()
