"""What a model family declares to the workflow, without importing torch.

Snakemake parses the workflow on the submit host and again inside every cluster job, so the
descriptor that the config check, the rules and the report read is plain Python: the family's
name, the data it reads, its settings (a JSON-schema fragment with defaults), its products and
figures. Whatever needs torch (the training step, the network, the products' writers) is
reached through methods that import it on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astroflow.maps.cmd import MAPS_PER_SIM
from astroflow.maps.splits import split_simulations

if TYPE_CHECKING:
    from torch import nn

    from astroflow.engine.family import TrainingFamily

DATA_KINDS: tuple[str, ...] = ("maps", "cubes", "volumes")
"""What a family can read: CMD map shards, PPV cube shards, or paired low/high-resolution
volume shards."""


class SettingError(ValueError):
    """An experiment setting does not fit the rest of the config; ``key`` names the setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"'{key}': {message}")
        self.key = key
        self.message = message


def check_fields(fields: Sequence[str], available: Sequence[str]) -> None:
    """Every input field of a map family is one the data provide (``data.fields``)."""
    missing = [f for f in fields if f not in available]
    if missing:
        raise SettingError("fields", f"{missing} are not in data.fields {list(available)}")


@dataclass(frozen=True)
class Figure:
    """A report figure of an experiment: ``results/<experiment>/figures/<name>.png``.

    ``inputs`` are products of the same experiment (paths below ``results/<experiment>/``)
    the figure is drawn from; ``caption`` is its report caption (reStructuredText: what it
    shows and how to read it); ``category`` is the report section.
    """

    name: str
    inputs: tuple[str, ...]
    caption: str
    category: str
    coloured: bool = False
    """Whether the figure is coloured by the experiment's descriptive parameters (so a change
    of them redraws it, and only it)."""
    splits: tuple[str, ...] = ()
    """Shard splits the figure also reads (their shards follow ``inputs``, split by split)."""


@dataclass(frozen=True)
class Evaluation:
    """A JSON product ``results/<experiment>/<name>.json`` that the family computes.

    It reads ``inputs`` (products of the same experiment, ``model.pt`` by default), the
    shards of ``splits``, and the products of other experiments that
    :meth:`Family.evaluation_references` names; :meth:`Family.evaluate` writes it. It runs
    the network, so it gets the experiment's threads and (at most one) GPU.
    """

    name: str
    splits: tuple[str, ...] = ("test",)
    inputs: tuple[str, ...] = ("model.pt",)


TRAINING_CURVES = Figure(
    "training_curves",
    ("train_log.csv",),
    "Training and validation loss per epoch (and the learning rate). The saved model is the "
    "epoch with the lowest validation loss; a validation curve that rises while the training "
    "curve falls means over-fitting.",
    "Training",
)
TSNE = Figure(
    "tsne",
    ("tsne.parquet", "clusters.json"),
    "t-SNE map of the test-set embeddings (penultimate layer), coloured by the experiment's "
    "first parameters and by KMeans cluster. Neighbours in the map are neighbours in the "
    "embedding; distances between far-apart groups carry no meaning.",
    "Embeddings",
    coloured=True,
)


class Family:
    """A model family's declaration; subclasses set the attributes and lazy hooks.

    Attributes: ``name`` (the experiments' ``model`` value), ``data`` (one of
    :data:`DATA_KINDS`), ``description`` (one line for config/README.md and errors),
    ``settings`` (JSON-schema properties of the experiment keys the family adds to the common
    ones, each with its ``default``), ``runtime_settings`` (keys of ``settings`` that describe
    products but do not change the trained model), ``predicts``/``embeds`` (whether the
    ``infer`` and ``embed`` rules apply), ``loss_label`` (training-curve axis), ``figures``,
    and ``sweep_metrics`` (curve label -> dotted path in ``metrics.json`` that a sweep plots
    against the swept value).
    """

    name: str = ""
    data: str = "maps"
    description: str = ""
    settings: Mapping[str, Mapping[str, Any]] = {}
    runtime_settings: tuple[str, ...] = ()
    predicts: bool = True
    embeds: bool = True
    loss_label: str = "loss"
    figures: tuple[Figure, ...] = (TRAINING_CURVES, TSNE)
    sweep_metrics: Mapping[str, str] = {}
    metric_rows: str = "parameter"
    """What a row of the summary's metrics table is (the keys of nested ``metrics.json``)."""
    metric_columns: tuple[str, ...] = ()
    """Preferred column order of that table; other metrics follow."""
    real_outputs: tuple[str, ...] = ()
    """Products of one real observation, ``results/<experiment>/real/<name>_<output>.fits``
    (the cube data kind's ``data/real_cubes/<name>.fits``, say)."""
    sweep_reference: tuple[str, float] | None = None
    """A horizontal line of the sweep figure (label, value), chance accuracy for example."""
    evaluations: tuple[Evaluation, ...] = ()
    """JSON products beyond ``metrics.json`` (an emulator's validation, say)."""

    # -- parse time: pure Python --------------------------------------------------------------

    def check(self, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:  # noqa: B027
        """Cross-key checks of one experiment (defaults filled in) against the config; raise
        :class:`SettingError` naming the setting (the caller prefixes the experiment's path)."""

    def products(
        self, experiment: str, settings: Mapping[str, Any], context: Mapping[str, Any]
    ) -> list[str]:
        """Paths (from the working directory) that ``snakemake`` builds for an experiment.

        ``context`` holds workflow facts a family may need: ``real_cubes``, names of the real
        FITS cubes to predict; ``sweep_member``, true for the members of a sweep but its last,
        which need only the metrics the sweep compares and their training curves (the last
        member gets every product, and any product of a member is still a target of its own).
        """
        base = f"results/{experiment}"
        if context.get("sweep_member"):
            return [f"{base}/figures/{TRAINING_CURVES.name}.png"] + (
                [f"{base}/metrics.json"] if self.predicts else []
            )
        products = [f"{base}/figures/{figure.name}.png" for figure in self.figures]
        if self.predicts:
            products.append(f"{base}/metrics.json")
        if self.embeds:
            products.append(f"{base}/clusters.json")
        products += [f"{base}/{evaluation.name}.json" for evaluation in self.evaluations]
        products += [f"{base}/samples/{name}.h5" for name in self.samples(settings)]
        return products

    def items(self, split: str, settings: Mapping[str, Any], config: Mapping[str, Any]) -> int:
        """Items (maps, cubes or volumes) of ``split`` the experiment reads, from the config
        alone: the parse-time check compares batch sizes and analysis settings with them."""
        if self.data == "cubes":
            return config["cubes"]["shards"][split] * config["cubes"]["cores_per_shard"]
        if self.data == "volumes":
            return config["volumes"]["shards"][split] * config["volumes"]["volumes_per_shard"]
        data = config["data"]
        sims = split_simulations(data["n_sims"], data["splits"], config["seed"])[split]
        return MAPS_PER_SIM * len(sims) * len(self.suites(settings, config))

    def suites(self, settings: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
        """CMD suites whose map shards the experiment reads (map families): ``data.suite``."""
        return [config["data"]["suite"]]

    def descriptive_params(self, settings: Mapping[str, Any]) -> list[str]:
        """Parameters that describe the embeddings (t-SNE colours, the KNN score): the first
        is the one the cluster summary scores."""
        return list(settings.get("params", []))

    def figure(self, name: str) -> Figure:
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise KeyError(
            f"family {self.name} has no figure {name!r}; it has "
            f"{', '.join(f.name for f in self.figures)}"
        )

    def evaluation(self, name: str) -> Evaluation:
        for evaluation in self.evaluations:
            if evaluation.name == name:
                return evaluation
        raise KeyError(f"family {self.name} has no evaluation {name!r}")

    def samples(self, settings: Mapping[str, Any]) -> list[str]:
        """Names of the sample sets an experiment generates,
        ``results/<experiment>/samples/<name>.h5`` plus the folder ``<name>/`` of the same maps
        in the CMD layout (none for families that generate nothing)."""
        return []

    def evaluation_references(
        self, name: str, settings: Mapping[str, Any], config: Mapping[str, Any]
    ) -> dict[str, str]:
        """Products of other experiments that evaluation ``name`` reads, by input name (the
        model of a cnn2d experiment that infers parameters from generated maps, say)."""
        return {}

    # -- job time: imports torch or matplotlib on first use -----------------------------------

    def training(self) -> TrainingFamily:
        """The torch side of the family: data, networks and the training step."""
        raise NotImplementedError(f"family {self.name} does not train")

    def build_network(self, arch: Mapping[str, Any]) -> nn.Module:
        """The product network (what ``model.pt`` holds) from its constructor arguments."""
        raise NotImplementedError(f"family {self.name} has no product network")

    def predict(
        self,
        model: nn.Module,
        meta: Mapping[str, Any],
        model_path: str | os.PathLike[str],
        shard_paths: Sequence[str | os.PathLike[str]],
        out_h5: str | os.PathLike[str],
        out_metrics: str | os.PathLike[str],
        **loader: Any,
    ) -> dict[str, Any]:
        """Write ``predictions.h5`` and ``metrics.json`` of the test shards; return the metrics.

        ``loader`` holds ``batch_size``, ``num_workers`` and ``device``.
        """
        raise NotImplementedError(f"family {self.name} makes no predictions")

    def embed(
        self,
        model: nn.Module,
        meta: Mapping[str, Any],
        model_path: str | os.PathLike[str],
        shard_paths: Sequence[str | os.PathLike[str]],
        out_h5: str | os.PathLike[str],
        **loader: Any,
    ) -> None:
        """Write ``embeddings.h5`` (see :mod:`astroflow.embed`) of the test shards."""
        raise NotImplementedError(f"family {self.name} makes no embeddings")

    def predict_real(
        self,
        model_path: str | os.PathLike[str],
        data_path: str | os.PathLike[str],
        outputs: Mapping[str, str],
        *,
        config: Mapping[str, Any],
        threads: int | None = None,
    ) -> None:
        """Apply the model to one real observation (``real_outputs`` name the products)."""
        raise NotImplementedError(f"family {self.name} predicts no real data")

    def evaluate(
        self,
        name: str,
        inputs: Mapping[str, list[str]],
        output: str | os.PathLike[str],
        *,
        settings: Mapping[str, Any],
        config: Mapping[str, Any],
        threads: int | None = None,
    ) -> dict[str, Any]:
        """Write evaluation ``name`` to ``output`` (JSON) and return it. ``inputs`` maps each
        input name (``model``, a split, a reference) to its paths; ``settings`` are the
        experiment's, defaults filled in."""
        raise NotImplementedError(f"family {self.name} has no evaluation {name!r}")

    def sample(
        self,
        name: str,
        model_path: str | os.PathLike[str],
        out_h5: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        *,
        settings: Mapping[str, Any],
        config: Mapping[str, Any],
        threads: int | None = None,
    ) -> None:
        """Write sample set ``name`` (one of :meth:`samples`) from the model at ``model_path``:
        ``out_h5`` and the CMD-layout folder ``out_dir``."""
        raise NotImplementedError(f"family {self.name} generates no samples")

    def plot(
        self, figure: str, inputs: Sequence[str], output: str, colour_by: Sequence[str]
    ) -> None:
        """Draw ``figure`` from its ``inputs`` (in :attr:`Figure.inputs` order) to ``output``;
        ``colour_by`` are the :meth:`descriptive_params` of the experiment."""
        from astroflow import plots

        if figure == TRAINING_CURVES.name:
            plots.plot_training_curves(inputs[0], output, loss_label=self.loss_label)
        elif figure == TSNE.name:
            plots.plot_tsne(inputs[0], inputs[1], output, colour_by=list(colour_by)[:2])
        else:
            raise KeyError(f"family {self.name} does not draw figure {figure!r}")
