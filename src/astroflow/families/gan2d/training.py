"""gan2d training: a conditional generator and a projection critic on map shards.

One step: the generator makes ``group_size`` maps at the parameters of each of the first
simulations of the (shuffled) batch, as many maps in all as the batch holds. A critic update
on the real maps (D4-augmented by the epoch plan) and these maps (detached), with the hinge
or non-saturating loss and, every ``r1_every`` steps, the R1 penalty on real maps (lazy
regularization, scaled by ``r1_every`` so that its average strength does not depend on the
interval); then a generator update of the same maps through the updated critic plus the
statistics terms (:mod:`astroflow.families.gan2d.statistics`): each group's mean auto
spectra, cross-correlation coefficients, pixel distribution and pixel means against those of
its simulation, from all its maps. Without them the critic alone had not found the spectra
after 520 steps (median |ΔP/P| 0.4-0.8, W1 0.14-0.29 dex); with them the two-point and
one-point statistics converge within a few hundred steps and the critic is left with the
rest. The EMA generator follows.
The critic sees instance noise whose std decays linearly to zero over the run; the EMA decay
warms up over the first steps (:func:`ema_decay`); both learning rates follow
``lr_schedule``. The validation loss that picks the saved epoch is the emulator's own score on
validation simulations (:mod:`astroflow.families.gan2d.emulate`), not an adversarial loss,
which says little about sample quality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from astroflow.batch import Batch
from astroflow.engine.distributed import World
from astroflow.engine.family import Parts, Paths, StepContext, TrainingFamily, Validation
from astroflow.families.gan2d.emulate import generate, group_by_simulation, validation_score
from astroflow.families.gan2d.kernel_fit import (
    fit_kernel_regression,
    fit_quantile_shapes,
    load_kernel_regression,
    load_quantile_map,
    log_ratios_of,
)
from astroflow.families.gan2d.statistics import (
    QUANTILES,
    SimulationTargets,
    simulation_targets,
    statistics_losses,
)
from astroflow.maps.dataset import ShardDataset
from astroflow.models.gan2d import Critic, Generator

VALIDATION_SEED = 0
"""Seed of the fixed latents that validation and the TensorBoard grids use every epoch."""


def generator_arch(
    cfg: Mapping[str, Any], map_size: int, n_sims: int, levels: int
) -> dict[str, Any]:
    """Constructor arguments of the generator (what ``model.pt`` rebuilds); ``n_sims``
    training simulations anchor its kernel regressions of the fields' means, scales and, with
    ``shape_components``, quantile functions at ``levels`` intervals."""
    components = cfg["shape_components"]
    return {
        "n_fields": len(cfg["fields"]),
        "n_params": len(cfg["params"]),
        "map_size": map_size,
        "latent": cfg["latent"],
        "width": cfg["width"],
        "depth": cfg["depth"],
        "embed": cfg["embed"],
        "kernel_anchors": n_sims,
        "shape_levels": levels if components else 0,
        "shape_components": components,
    }


def critic_arch(cfg: Mapping[str, Any], map_size: int) -> dict[str, Any]:
    w, levels = cfg["critic_width"], (map_size // 4).bit_length()
    return {
        "n_fields": len(cfg["fields"]),
        "n_params": len(cfg["params"]),
        "map_size": map_size,
        "widths": [min(w * 2**i, 4 * w) for i in range(levels)],
    }


def adversarial_losses(
    real: torch.Tensor, fake: torch.Tensor, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic loss of scores on real and fake maps, and the generator's loss of fake scores.

    ``hinge``: max(0, 1 - D(x)) + max(0, 1 + D(G(z))) and -D(G(z)); ``nonsaturating``:
    softplus(-D(x)) + softplus(D(G(z))) and softplus(-D(G(z))).
    """
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean(), -fake.mean()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean(), F.softplus(-fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use hinge or nonsaturating")


def ema_decay(decay: float, step: int) -> float:
    """EMA decay at ``step``: ``decay``, but at most (1 + step) / (10 + step).

    Without the warm-up, a decay of 0.999 keeps 37% of the random initial generator after
    1,000 steps, and averaging weights that far apart gives no generator at all: a short run's
    products (and the validation that picks its epoch) would show mostly the initial network.
    A function of the step, so a resumed run averages exactly as an uninterrupted one.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


class LearningRateFactor:
    """Factor of the learning rates at a step: 1 throughout (``constant``), or a half cosine
    from 1 at the start to 0 at the last step (``cosine``): the statistics terms want large
    steps early and small ones to settle. An object, so schedulers checkpoint its settings."""

    def __init__(self, schedule: str, total_steps: int) -> None:
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown lr_schedule {schedule!r}; use constant or cosine")
        self.schedule, self.total_steps = schedule, max(int(total_steps), 1)

    def __call__(self, step: int) -> float:
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step / self.total_steps, 1.0)))


class Gan2dTraining(TrainingFamily):
    """Generator and critic with their own optimizers (TTUR), an EMA generator as product."""

    items = "maps"
    loss_names = ("loss", "critic", "generator", "r1", "spectrum", "correlation", "pdf", "mean")

    def __init__(self) -> None:
        self.total_steps = 1
        self.cfg: Mapping[str, Any] = {}
        self.targets: SimulationTargets | None = None
        self.mean_fit: dict[str, np.ndarray] = {}
        self.scale_fit: dict[str, np.ndarray] = {}
        self.shape_fit: dict[str, Any] = {}

    def check(self, cfg: Mapping[str, Any]) -> None:
        for key in ("fields", "params"):
            if isinstance(cfg.get(key), str) or not cfg.get(key):
                raise ValueError(f"experiment setting '{key}' must be a non-empty list")
        self.cfg = cfg

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[ShardDataset, ShardDataset]:
        train = ShardDataset(train_paths, cfg["fields"], cfg["params"])
        if not cfg["augment"]:
            train.n_transforms = 1  # the epoch plan then asks for the identity only
        self.targets, sim_params, (means, stds) = training_targets(train)
        log_ratios = log_ratios_of(cfg["params"])
        self.mean_fit = fit_kernel_regression(sim_params, means, cfg["seed"], log_ratios)
        self.scale_fit = fit_kernel_regression(sim_params, np.log(stds), cfg["seed"], log_ratios)
        if cfg["shape_components"]:
            self.shape_fit = fit_quantile_shapes(
                sim_params,
                self.targets.quantiles.numpy(),
                np.stack([means, stds]),
                cfg["shape_components"],
                cfg["seed"],
                log_ratios,
            )
        return train, ShardDataset(val_paths, cfg["fields"], cfg["params"])

    def arch(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> dict[str, Any]:
        size = train_set.map_size
        levels = self.targets.quantiles.shape[-1]
        generator = generator_arch(cfg, size, len(self.mean_fit["anchors"]), levels)
        return {"generator": generator, "critic": critic_arch(cfg, size)}

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        generator = Generator(**arch["generator"])
        load_kernel_regression(generator.mean, self.mean_fit)
        load_kernel_regression(generator.log_scale, self.scale_fit)
        if self.shape_fit:
            load_quantile_map(generator.quantile_map, self.shape_fit)
        return {"generator": generator, "critic": Critic(**arch["critic"])}

    def optimizers(
        self, cfg: Mapping[str, Any], networks: Mapping[str, nn.Module], total_steps: int
    ) -> dict[str, tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
        """Adam with beta1 = 0 (momentum chases a moving adversary), separate rates, and the
        ``lr_schedule`` of both."""
        self.total_steps = total_steps
        out = {}
        for name, lr in (("generator", cfg["lr"]), ("critic", cfg["critic_lr"])):
            optimizer = torch.optim.Adam(networks[name].parameters(), lr=lr, betas=(0.0, 0.99))
            factor = LearningRateFactor(cfg["lr_schedule"], total_steps)
            out[name] = (optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor))
        return out

    def ema_decays(self, cfg: Mapping[str, Any]) -> dict[str, float]:
        return {"generator": cfg["ema"]}

    def noise_std(self, step: int) -> float:
        """Instance noise at ``step``: ``instance_noise`` at the start, zero at the end."""
        return self.cfg["instance_noise"] * max(0.0, 1.0 - step / self.total_steps)

    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        cfg, device = self.cfg, ctx.device
        real = batch.x.to(device)
        params = batch.y.to(device)
        generator, critic = parts.networks["generator"], parts.networks["critic"]
        sigma = self.noise_std(ctx.step)
        # Generated maps come in groups of `group_size` at the parameters of one training
        # simulation each (the first simulations of the shuffled batch), so that the statistics
        # terms compare a group's mean spectra and pixel distribution with its simulation's.
        size = min(cfg["group_size"], len(real))
        groups = len(real) // size
        fake_params = params[:groups].repeat_interleave(size, dim=0)

        def noisy(x: torch.Tensor) -> torch.Tensor:
            return x + sigma * torch.randn_like(x) if sigma > 0 else x

        def latents() -> list[torch.Tensor]:
            return [torch.randn(s, device=device) for s in generator.latent_shapes(groups * size)]

        # One generator pass serves both updates: the critic sees the maps detached, then the
        # generator's loss differentiates the same maps through the updated critic.
        fake = parts.calls["generator"](latents(), fake_params)
        lazy_r1 = cfg["r1"] > 0 and ctx.step % cfg["r1_every"] == 0
        real_in = noisy(real).requires_grad_(lazy_r1)
        # One critic pass over real and fake together: DDP allows one forward per backward.
        scores = parts.calls["critic"](
            torch.cat([real_in, noisy(fake.detach())]), torch.cat([params, fake_params])
        )
        critic_loss, _ = adversarial_losses(scores[: len(real)], scores[len(real) :], cfg["loss"])
        r1 = torch.zeros((), device=device)
        total = critic_loss
        if lazy_r1:
            (grad,) = torch.autograd.grad(scores[: len(real)].sum(), real_in, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
            total = critic_loss + 0.5 * cfg["r1"] * cfg["r1_every"] * r1
        parts.update("critic", total)

        # The generator step differentiates through the critic's plain module, frozen: its
        # weights are the same on every rank and need no gradient.
        critic.requires_grad_(False)
        fake_scores = critic(noisy(fake), fake_params)
        _, adversarial = adversarial_losses(fake_scores, fake_scores, cfg["loss"])
        targets = self.targets_on(device)
        rows = targets.rows(batch.sim_id[:groups]).to(device)
        spectrum, correlation, pdf, shift = statistics_losses(
            fake.float().unflatten(0, (groups, size)), rows, targets
        )
        generator_loss = (
            cfg["adversarial_weight"] * adversarial
            + cfg["spectral_weight"] * spectrum
            + cfg["correlation_weight"] * correlation
            + cfg["pdf_weight"] * pdf
            + cfg["mean_weight"] * shift
        )
        parts.update("generator", generator_loss)
        critic.requires_grad_(True)
        ema = parts.ema["generator"]
        ema.decay = ema_decay(cfg["ema"], ctx.step)
        ema.update(generator)
        return tuple(
            t.detach()
            for t in (critic_loss, critic_loss, adversarial, r1, spectrum, correlation, pdf, shift)
        )

    def targets_on(self, device: torch.device) -> SimulationTargets:
        """The training simulations' statistics (:func:`training_targets`) on ``device``."""
        if self.targets is None:
            raise RuntimeError("datasets() computes the simulation targets before any step")
        if self.targets.log_auto.device != torch.device(device):
            self.targets = self.targets.to(device)
        return self.targets

    def validate(
        self, parts: Parts, loader: DataLoader, dataset: ShardDataset, world: World
    ) -> Validation:
        """Emulator score of the EMA generator on up to ``val_sims`` validation simulations
        (fixed latents), and TensorBoard images: generated next to real maps, P(k) ratios."""
        groups = group_by_simulation(dataset)[: self.cfg["val_sims"]]
        model = parts.ema["generator"].module
        score, ratios = validation_score(model, dataset, groups, VALIDATION_SEED, world.device)
        first = groups[0]
        real = dataset[list(first)].x.numpy()[:1]
        fake = generate(model, dataset.targets[first[:1]], 1, VALIDATION_SEED, world.device)
        images = {
            f"maps/{name}": _side_by_side(real[0, f], fake[0, f])
            for f, name in enumerate(self.cfg["fields"])
        }
        images["pk_ratio"] = _ratio_strips(ratios)
        return Validation(score, images)

    def product_network(self, parts: Parts) -> nn.Module:
        return parts.ema["generator"].module

    def model_meta(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> dict[str, Any]:
        return {
            "fields": list(cfg["fields"]),
            "params": list(cfg["params"]),
            "normalization": {
                "mean": train_set.field_mean.tolist(),
                "std": train_set.field_std.tolist(),
            },
        }

    def describe(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> str:
        return f"maps of {cfg['fields']} from white noise and {cfg['params']}"

    def input_names(self, cfg: Mapping[str, Any]) -> list[str]:
        return list(cfg["fields"])


def training_targets(train: ShardDataset) -> tuple[SimulationTargets, np.ndarray, np.ndarray]:
    """Statistics of every training simulation from all its maps (:mod:`.statistics`), read
    one simulation at a time: the targets of the generator's statistics terms; and, in the
    targets' order of rows, the simulations' scaled parameters (S, P) and the mean and
    standard deviation of each field's pixels (2, S, F), which its kernel regressions fit."""
    maps, ids, params, moments = [], [], {}, {}
    for group in group_by_simulation(train):
        maps.append(train[list(group)].x.numpy())
        ids.append(train.sim_ids[group])
        sim = int(train.sim_ids[group[0]])
        params[sim] = train.targets[group[0]]
        moments[sim] = [f(maps[-1], axis=(0, 2, 3), dtype=np.float64) for f in (np.mean, np.std)]
    quantiles = min(QUANTILES, train.map_size**2)
    targets = simulation_targets(np.concatenate(maps), np.concatenate(ids), quantiles)
    order = [int(sim) for sim in targets.sim_ids]
    return (
        targets,
        np.stack([params[s] for s in order]),
        np.stack([moments[s] for s in order], axis=1),
    )


def _side_by_side(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """Real (left) and generated (right) map on one grey scale in [0, 1]."""
    both = np.concatenate([real, np.full((len(real), 2), real.max()), fake], axis=1)
    lo, hi = np.percentile(real, [0.5, 99.5])
    return np.clip((both - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)


def _ratio_strips(ratios: np.ndarray) -> np.ndarray:
    """P_gen/P_real per field (rows, 8 pixels high) against k (columns): grey 0.5 is a ratio
    of 1, black 1/2 and white 2 (log scale)."""
    grey = np.clip(0.5 + np.log2(np.clip(ratios, 1e-6, None)) / 2, 0, 1)
    return np.repeat(grey, 8, axis=0).astype(np.float32)
