"""srgan3d training: crops of volume pairs, generator and critic, the adversarial step.

The step (one global batch of crops) always trains the critic on the non-saturating loss with
an R1 penalty on real samples (Mescheder et al. 2018); every ``critic_steps``-th step it also
trains the generator on the adversarial loss plus a supervised term. During the first
``warmup_steps`` the generator trains on the supervised term alone, every step. The supervised
term compares ``coarse`` block averages (factor³ voxels) of output and truth, which pins the
resolved scales without pulling the unresolved ones towards their (featureless) mean, or the
``full`` fields. An optional spectral term (``spectral_weight``) compares the log binned power
of the residuals of output and truth from the skip path (densities in linear units) on the
shells above ``spectral_k_min`` times the crop's low-resolution Nyquist frequency
(:mod:`~astroflow.families.srgan3d.spectral`), in warm-up too. The EMA generator is the
product; its decay ramps up to ``ema_decay`` (:func:`ema_decay`).

With ``spectral_skip`` the skip path is the window of the spectral interpolation of the whole
input, which the dataset hands over as the second half of the target's channels; the critic
sees candidates beside it. The truth's residual from it holds only the modes the input lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from astroflow.batch import Batch
from astroflow.device import to_device
from astroflow.engine.family import Parts, Paths, StepContext, TrainingFamily, Validation
from astroflow.families.srgan3d import SRGAN3D
from astroflow.families.srgan3d.images import ratio_image, slice_image
from astroflow.families.srgan3d.inference import superresolve, trilinear
from astroflow.families.srgan3d.spectral import spectral_loss
from astroflow.families.srgan3d.validation import compare_channel, contrast, validation_loss
from astroflow.models.srgan3d import Critic, Generator, upsample
from astroflow.volumes.dataset import VolumeDataset, read_shards
from astroflow.volumes.scaling import VolumeScaling, fit_scaling

VALIDATION_NOISE_SEED = 0


class Srgan3dTraining(TrainingFamily):
    items = "crops"
    loss_names = ("loss", "critic", "adversarial", "supervised", "r1", "spectral")

    def __init__(self) -> None:
        self._log_std: list[float] = []
        """Per channel the scaling's std of a log-scaled channel, else 0 (see _linear)."""
        self._cfg: Mapping[str, Any] = {}
        """The experiment settings, which the step reads; set by :meth:`datasets`, the first
        hook the engine calls with them."""

    def check(self, cfg: Mapping[str, Any]) -> None:
        if cfg.get("supervised", "coarse") not in ("coarse", "full"):
            raise ValueError(f"experiment setting 'supervised' must be coarse or full: {cfg}")

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[VolumeDataset, VolumeDataset]:
        self._cfg = cfg
        train, val = read_shards(train_paths), read_shards(val_paths)
        scaling = fit_scaling(np.concatenate([s.hr for s in train]), train[0].channels)
        self._log_std = [
            std if log else 0.0 for log, std in zip(scaling.log, scaling.std, strict=True)
        ]
        options = {
            "crop": cfg["crop"],
            "pad": Generator(1, train[0].factor, 8).padding,
            "spectral": cfg["spectral_skip"],
        }
        train_set = VolumeDataset(
            train, scaling, crops_per_volume=cfg["crops_per_volume"], **options
        )
        return train_set, VolumeDataset(val, scaling, augment=False, **options)

    def arch(self, cfg: Mapping[str, Any], train_set: VolumeDataset) -> dict[str, Any]:
        return {
            "channels": len(train_set.channels),
            "factor": train_set.factor,
            "width": cfg["width"],
            "critic_width": cfg["critic_width"],
            "checkpointing": cfg["checkpointing"],
            "spectral": cfg["spectral_skip"],
        }

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        return {
            "generator": SRGAN3D.build_network(arch),
            "critic": Critic(arch["channels"], arch["critic_width"]),
        }

    def optimizers(
        self, cfg: Mapping[str, Any], networks: Mapping[str, nn.Module], total_steps: int
    ) -> dict[str, tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
        out = {}
        for name in ("generator", "critic"):
            # beta1 = 0.5: the usual GAN choice, momentum lags behind a moving opponent.
            optimizer = torch.optim.AdamW(
                networks[name].parameters(),
                lr=cfg["lr"],
                betas=(0.5, 0.99),
                weight_decay=cfg["weight_decay"],
            )
            out[name] = (optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, 1.0))
        return out

    def ema_decays(self, cfg: Mapping[str, Any]) -> dict[str, float]:
        return {"generator": cfg["ema_decay"]}

    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        cfg = self._cfg
        x = to_device(batch.x, ctx.device)
        y = batch.y.to(ctx.device, non_blocking=True)
        generator, critic = parts.networks["generator"], parts.networks["critic"]
        if generator.spectral:  # the target carries the skip path (VolumeDataset, spectral)
            real, skip = y[:, : generator.channels], y[:, generator.channels :]
            up = skip
        else:
            real, skip = y, None
            up = upsample(x, generator.factor, generator.padding)
        with torch.no_grad(), ctx.autocast():
            fake = parts.calls["generator"](x, None, skip).float()
        supervised = self._supervised(fake, real, generator.factor)

        # Critic: one pass over real and fake together (DDP allows one forward per backward).
        real_in = real.detach().requires_grad_(True)
        with ctx.autocast():
            scores = parts.calls["critic"](torch.cat([real_in, fake]), torch.cat([up, up])).float()
        s_real, s_fake = scores[: len(real)], scores[len(real) :]
        critic_loss = F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
        (grad,) = torch.autograd.grad(s_real.sum(), real_in, create_graph=True)
        r1 = grad.pow(2).flatten(1).sum(1).mean()
        parts.update("critic", critic_loss + 0.5 * cfg["r1_gamma"] * r1)

        adversarial = torch.zeros((), device=ctx.device)
        spectral = torch.zeros((), device=ctx.device)
        warmup = ctx.step < cfg["warmup_steps"]
        if warmup or ctx.step % cfg["critic_steps"] == cfg["critic_steps"] - 1:
            critic.requires_grad_(False)
            with ctx.autocast():
                fake = parts.calls["generator"](x, None, skip).float()
            loss = cfg["supervised_weight"] * self._supervised(fake, real, generator.factor)
            if cfg["spectral_weight"]:
                # Shells above spectral_k_min x the crop's low-resolution Nyquist frequency.
                # Residuals from the skip path: no large scales to leak (spectral.py); from the
                # spectral skip, the truth's residual holds only the modes the input lacks, so
                # shells below the Nyquist frequency penalise what the generator adds there.
                # Densities in linear units, as the evaluation sees them (spectral.py).
                lin_up = self._linear(up)
                spectral = spectral_loss(
                    self._linear(fake) - lin_up,
                    self._linear(real) - lin_up,
                    k_min=cfg["spectral_k_min"] * real.shape[-1] / (2 * generator.factor),
                )
                loss = loss + cfg["spectral_weight"] * spectral
            if not warmup:
                with ctx.autocast():
                    adversarial = F.softplus(-parts.calls["critic"](fake, up).float()).mean()
                loss = loss + cfg["adversarial_weight"] * adversarial
            parts.update("generator", loss)
            critic.requires_grad_(True)
            ema = parts.ema["generator"]
            ema.decay = ema_decay(cfg["ema_decay"], ctx.step)
            ema.update(generator)
        return (
            supervised.detach(),
            critic_loss.detach(),
            adversarial.detach(),
            supervised.detach(),
            r1.detach(),
            spectral.detach(),
        )

    def _linear(self, scaled: torch.Tensor) -> torch.Tensor:
        """Scaled crops with the log-scaled channels (densities) back in linear units up to a
        constant factor per channel, exp(std x), which the spectral loss's ratio ignores."""
        return torch.cat(
            [
                torch.exp(std * scaled[:, c : c + 1]) if std else scaled[:, c : c + 1]
                for c, std in enumerate(self._log_std)
            ],
            dim=1,
        )

    def _supervised(self, fake: torch.Tensor, real: torch.Tensor, factor: int) -> torch.Tensor:
        if self._cfg["supervised"] == "coarse":
            fake, real = F.avg_pool3d(fake, factor), F.avg_pool3d(real, factor)
        return F.mse_loss(fake, real)

    def validate(self, parts, loader, dataset: VolumeDataset, world) -> Validation:
        """Spectra of the EMA generator's output on the whole validation volumes (tiled as in
        the products), TensorBoard slices and the P(k) ratio."""
        generator = parts.ema["generator"].module
        world.sync_buffers(generator)
        device = next(generator.parameters()).device
        outputs = np.stack(
            [
                superresolve(
                    generator,
                    v,
                    tile=self._cfg["crop"],
                    seed=VALIDATION_NOISE_SEED,
                    device=device,
                    keep_resolved=self._cfg["keep_resolved"],
                )
                for v in dataset.lr
            ]
        )
        report, physical = compare_volumes(dataset, outputs)
        images = {
            f"slices/{name}": slice_image(
                [physical[key][0, c] for key in ("trilinear", "output", "truth")]
            )
            for c, name in enumerate(dataset.channels)
        }
        images["power_ratio"] = ratio_image(report)
        return Validation(validation_loss(report), images)

    def product_network(self, parts: Parts) -> nn.Module:
        return parts.ema["generator"].module

    def model_meta(self, cfg: Mapping[str, Any], train_set: VolumeDataset) -> dict[str, Any]:
        return {
            "fields": list(train_set.channels),
            "params": [],
            "normalization": train_set.scaling.to_dict(),
            "units": list(train_set.units),
            "box_size": train_set.box_size,
            "factor": train_set.factor,
        }

    def describe(self, cfg: Mapping[str, Any], train_set: VolumeDataset) -> str:
        c, f = cfg["crop"], train_set.factor
        return (
            f"{len(train_set.channels)}-channel volumes x{f}: crops of {c}^3 (+{train_set.pad} "
            f"padding) -> {f * c}^3, {cfg['critic_steps']} critic steps per generator step, "
            f"{cfg['warmup_steps']} supervised warm-up steps"
        )


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at global ``step``: (1 + step) / (10 + step) until that reaches
    ``decay``, so the average forgets the random initialisation within the first few dozen
    steps of a short run instead of after 1 / (1 - decay) generator steps."""
    return min(decay, (1.0 + step) / (10.0 + step))


def compare_volumes(
    dataset: VolumeDataset, outputs: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per-channel comparison of scaled ``outputs`` (n, C, N, N, N) with the truth and the
    trilinear baseline of ``dataset``; also returns the physical volumes by name."""
    scaling: VolumeScaling = dataset.scaling
    lr = scaling.inverse(dataset.lr)
    physical = {
        "truth": scaling.inverse(dataset.hr),
        "output": scaling.inverse(outputs),
        "trilinear": np.stack([trilinear(v, dataset.factor) for v in lr]),
    }
    fields = {name: contrast(v, dataset.channels) for name, v in physical.items()}
    k_nyquist = np.pi * dataset.coarse / dataset.box_size
    report = {
        name: compare_channel(
            fields["truth"][:, c],
            {key: fields[key][:, c] for key in ("output", "trilinear")},
            dataset.box_size,
            k_nyquist,
        )
        for c, name in enumerate(dataset.channels)
    }
    return report, physical
