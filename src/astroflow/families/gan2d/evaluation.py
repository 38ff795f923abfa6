"""The emulator validation of a gan2d experiment: ``results/<experiment>/emulator.json``.

For every test simulation the EMA generator makes as many maps as the simulation has, at its
parameters, and three sets are compared with the real maps, field by field and pair by pair
(:func:`astroflow.evaluation.fields.compare_sets`):

- ``gan``: the generated maps;
- ``floor``: maps that differ from the real ones only by chance, the best any emulator can
  do. Synthetic data: fresh maps from the data's own generator at the same parameters and a
  new seed; real CMD data: the simulation's maps split in halves (first against second);
- ``network``, where the generator has a quantile map: the same maps before it, the
  network's own pixel distribution (what the map adds, in numbers);
- ``baseline``: Gaussian log fields (log-normal maps) with the mean auto and cross spectra and
  pixel means of the nearest training simulations in parameter space (a two-point emulator).

Each statistic is a per-simulation number; the JSON reports its median over the test
simulations, and the curves the figures draw. Parameter recovery: the model of a cnn2d
experiment (``recovery``) infers the parameters of every real and every generated test map;
R^2 per parameter of both.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from astroflow.evaluation.fields import compare_sets, cross_spectrum, field_pairs
from astroflow.evaluation.regression import r2_score
from astroflow.evaluation.two_point import gaussian_fields
from astroflow.families.gan2d.emulate import generate, group_by_simulation
from astroflow.io import write_json
from astroflow.maps.dataset import ShardDataset, unscale
from astroflow.maps.power_spectrum import power_spectrum_2d
from astroflow.maps.shards import normalize_maps
from astroflow.maps.synthetic import SUITE_MODELS, synthesize_maps_for_sim
from astroflow.modelfile import load_model

log = logging.getLogger(__name__)

FLOOR_STREAM = 7919
"""Mixed into the seed of the fresh synthetic maps, so they are never the data's own."""
SAMPLE_SEED = 104729
"""Mixed into the seed of the generated maps of each test simulation."""
PDF_BINS = 60
EXAMPLES = 2
"""Test simulations whose first real and generated maps the JSON holds for the maps figure."""
EXAMPLE_PIXELS = 128
"""Examples are cropped to this many pixels on a side, so that the JSON stays small."""
SETS = ("gan", "floor", "baseline")


def evaluate_emulator(
    inputs: Mapping[str, Sequence[str]],
    output: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """Write ``emulator.json`` from ``inputs``: ``model`` (the gan2d model file), ``test`` and
    ``train`` shards, and ``recovery_model`` (a cnn2d model file) when ``recovery`` is set."""
    if threads:
        torch.set_num_threads(threads)
    generator, meta = load_model(inputs["model"][0], "cpu")
    fields, params = meta["fields"], meta["params"]
    data = config["data"]
    box = float(data["box_size"])
    test = ShardDataset(inputs["test"], fields, params)
    train = ShardDataset(inputs["train"], fields, params)
    test.preload()
    train.preload()
    log10_std = test.field_std
    neighbours = _NearestSpectra(train, box, settings["baseline_neighbours"])
    floor = _floor_maker(test, fields, config)

    sets = SETS + (("network",) if generator.quantile_map.levels else ())
    per_sim: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in sets}
    generated_maps, real_maps = [], []
    for group in group_by_simulation(test):
        real = test[list(group)].x.numpy().astype(np.float64)
        sim = int(test.sim_ids[group[0]])
        seed = int(np.random.SeedSequence([config["seed"], SAMPLE_SEED, sim]).generate_state(1)[0])
        network = generate(generator, test.targets[group[:1]], len(group), seed, "cpu", False)
        with torch.no_grad():
            conditions = torch.from_numpy(test.targets[group]).float()
            fake = generator.map_pixels(torch.from_numpy(network), conditions).numpy()
        reference, floor_set = floor(group, real, seed)
        baseline = neighbours.baseline(test.targets[group[0]], len(group), real.shape[-1], seed)
        compared = {"gan": fake, "floor": floor_set, "baseline": baseline}
        if "network" in per_sim:
            compared["network"] = network
        for name, maps in compared.items():
            per_sim[name].append(compare_sets(maps, reference, box, log10_std))
        generated_maps.append(fake)
        real_maps.append(real)
    generated, real_all = np.concatenate(generated_maps), np.concatenate(real_maps)

    result = {
        "fields": list(fields),
        "params": list(params),
        "pairs": [f"{fields[a]}-{fields[b]}" for a, b in field_pairs(len(fields))],
        "n_test_sims": len(per_sim["gan"]),
        "maps_per_sim": int(len(real_all) // max(len(per_sim["gan"]), 1)),
        "floor": "fresh synthetic maps, new seed"
        if data["source"] == "synthetic"
        else "halves of each simulation's maps",
        "summary": _summary(per_sim, fields),
        "curves": _curves(per_sim),
        "pdf": _pdfs(real_all, generated, test),
        "examples": _examples(real_maps, generated_maps, test),
    }
    if "recovery_model" in inputs:
        result["recovery"] = recover_parameters(
            inputs["recovery_model"][0], test, real_all, generated, fields
        )
    write_json(output, result)
    for field, row in result["summary"]["fields"].items():
        log.info(
            "%s: |dP/P| gan %.3f floor %.3f baseline %.3f; W1 gan %.3f floor %.3f baseline %.3f",
            field,
            *(row["spectrum"][s] for s in SETS),
            *(row["pdf"][s] for s in SETS),
        )
    return result


def _summary(per_sim: Mapping[str, list[dict]], fields: Sequence[str]) -> dict[str, Any]:
    """Medians over test simulations of every distance, by field (or pair) and set."""

    def median(name: str, key: str, index: int) -> float:
        return float(np.median([sim[key][index] for sim in per_sim[name]]))

    pairs = field_pairs(len(fields))
    return {
        "fields": {
            field: {
                key: {name: median(name, key, f) for name in per_sim} for key in ("spectrum", "pdf")
            }
            for f, field in enumerate(fields)
        },
        "pairs": {
            f"{fields[a]}-{fields[b]}": {
                "correlation": {name: median(name, "correlation", j) for name in per_sim}
            }
            for j, (a, b) in enumerate(pairs)
        },
    }


def _curves(per_sim: Mapping[str, list[dict]]) -> dict[str, Any]:
    """P(k) ratio percentiles (16, 50, 84) over simulations per set and field, and the mean
    r(k) of real, generated and baseline maps per pair."""
    first = per_sim["gan"][0]
    out: dict[str, Any] = {"k": first["k"].tolist(), "n_modes": first["n_modes"].tolist()}
    for name in SETS:
        ratios = np.stack([sim["ratio"] for sim in per_sim[name]])
        out[f"ratio_{name}"] = np.percentile(ratios, [16, 50, 84], axis=0).tolist()
        out[f"r_{name}"] = np.mean([sim["r_test"] for sim in per_sim[name]], axis=0).tolist()
    out["r_real"] = np.mean([sim["r_ref"] for sim in per_sim["gan"]], axis=0).tolist()
    return out


def _pdfs(real: np.ndarray, generated: np.ndarray, data: ShardDataset) -> dict[str, Any]:
    """Histograms (densities) of log10 pixel values of all real and generated test maps."""
    out = {}
    for f, field in enumerate(data.fields):
        mean, std = data.field_mean[f], data.field_std[f]
        a, b = real[:, f] * std + mean, generated[:, f] * std + mean
        edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), PDF_BINS + 1)
        out[field] = {
            "edges": edges.tolist(),
            "real": np.histogram(a, edges, density=True)[0].tolist(),
            "gan": np.histogram(b, edges, density=True)[0].tolist(),
        }
    return out


def _examples(
    real: Sequence[np.ndarray], generated: Sequence[np.ndarray], data: ShardDataset
) -> dict[str, Any]:
    """First real and generated map of EXAMPLE_SIMS test simulations spread over the set."""
    picks = np.linspace(0, len(real) - 1, min(EXAMPLES, len(real))).astype(int)
    sims = np.unique(data.sim_ids, return_index=True)
    order = sims[0][np.argsort(sims[1])]
    crop = slice(0, EXAMPLE_PIXELS)
    return {
        "sim_id": [int(order[i]) for i in picks],
        "real": [np.round(real[i][0][:, crop, crop], 3).tolist() for i in picks],
        "gan": [np.round(generated[i][0][:, crop, crop], 3).tolist() for i in picks],
    }


def _floor_maker(test: ShardDataset, fields: Sequence[str], config: Mapping[str, Any]):
    """A function (group, real maps, seed) -> (reference set, floor set) for the data source."""
    data = config["data"]
    if data["source"] != "synthetic":

        def halves(group, real, seed):
            half = len(real) // 2
            return real[half:], real[:half]

        return halves

    with h5py.File(test.paths[0], "r") as h5:
        log_floor = float(h5.attrs["log_floor"])
    mean = test.field_mean[:, None, None]
    std = test.field_std[:, None, None]

    def fresh(group, real, seed):
        theta = test.params_raw[group[0]].astype(np.float64)
        rng = np.random.default_rng(np.random.SeedSequence([seed, FLOOR_STREAM]))
        maps = synthesize_maps_for_sim(
            theta,
            len(group),
            data["map_size"],
            data["box_size"],
            rng,
            fields,
            SUITE_MODELS[data["suite"]],
        )
        stack = np.stack([maps[f] for f in fields], axis=1)
        return real, normalize_maps(stack, mean, std, log_floor).astype(np.float64)

    return fresh


class _NearestSpectra:
    """Mean spectra and pixel means of every training simulation, and the two-point baseline
    of the ``k`` simulations nearest to a parameter point."""

    def __init__(self, train: ShardDataset, box_size: float, k: int) -> None:
        self.box, self.k = box_size, k
        groups = group_by_simulation(train)
        self.points = np.stack([train.targets[g[0]] for g in groups])
        autos, crosses, means = [], [], []
        for group in groups:
            maps = train[list(group)].x.numpy().astype(np.float64)
            self.k_bins, auto, _ = power_spectrum_2d(maps, box_size)
            autos.append(auto.mean(axis=0))
            crosses.append(
                [
                    cross_spectrum(maps[:, a], maps[:, b], box_size)[1].mean(axis=0)
                    for a, b in field_pairs(maps.shape[1])
                ]
            )
            means.append(maps.mean(axis=(0, 2, 3)))
        self.autos, self.crosses, self.means = np.array(autos), np.array(crosses), np.array(means)

    def baseline(self, point: np.ndarray, n: int, map_size: int, seed: int) -> np.ndarray:
        nearest = np.argsort(np.sum((self.points - point) ** 2, axis=1))[: self.k]
        auto = self.autos[nearest].mean(axis=0)
        cross = self.crosses[nearest].mean(axis=0).reshape(-1, len(self.k_bins))
        r = np.array(
            [
                cross[j] / np.sqrt(auto[a] * auto[b])
                for j, (a, b) in enumerate(field_pairs(len(auto)))
            ]
        ).reshape(-1, len(self.k_bins))
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        return gaussian_fields(
            self.k_bins, auto, r, self.means[nearest].mean(axis=0), n, map_size, self.box, rng
        )


@torch.no_grad()
def recover_parameters(
    model_path: str | os.PathLike[str],
    test: ShardDataset,
    real: np.ndarray,
    generated: np.ndarray,
    fields: Sequence[str],
) -> dict[str, Any]:
    """R^2 per parameter of a cnn2d model on the real and on the generated test maps (same
    order, same truth), and the predictions for the scatter figure."""
    model, meta = load_model(model_path, "cpu")
    channels = [list(fields).index(f) for f in meta["fields"]]
    names = meta["params"]
    columns = [test.param_names.index(p) for p in names]
    truth = test.params_raw[:, columns]
    out: dict[str, Any] = {
        "model": str(model_path),
        "names": list(names),  # the column order of truth and predictions (JSON sorts keys)
        "params": {},
        "truth": truth.tolist(),
    }
    for name, maps in (("real", real), ("gan", generated)):
        predicted = unscale(_predict(model, maps[:, channels]), names)
        out[f"predicted_{name}"] = predicted.tolist()
        for j, param in enumerate(names):
            out["params"].setdefault(param, {})[name] = r2_score(truth[:, j], predicted[:, j])
    for scores in out["params"].values():
        real_r2, gan_r2 = scores["real"], scores["gan"]
        scores["ratio"] = None if not real_r2 or gan_r2 is None else gan_r2 / real_r2
    return out


def _predict(model: nn.Module, maps: np.ndarray, batch: int = 256) -> np.ndarray:
    means = []
    for start in range(0, len(maps), batch):
        x = torch.from_numpy(maps[start : start + batch].astype(np.float32))
        means.append(model(x)[0].float().numpy())
    return np.concatenate(means)
