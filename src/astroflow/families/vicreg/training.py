"""vicreg training: positive pairs of maps, the VICReg loss, warm-up then cosine, and a
collapse check after every epoch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from astroflow.batch import Batch
from astroflow.device import to_device
from astroflow.engine.distributed import World
from astroflow.engine.family import Parts, Paths, StepContext, TrainingFamily, Validation
from astroflow.families.vicreg.collapse import check_collapse
from astroflow.families.vicreg.pairs import PairDataset
from astroflow.models.vicreg import VICRegNet, vicreg_loss


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear from ~0 to 1 over ``warmup_steps``, then a cosine to 0 at
    ``total_steps``. A pure function of the step, so a resumed run continues the same curve
    (the total is fixed by the settings: a run may not change its ``epochs``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class VICRegTraining(TrainingFamily):
    """Pairs (:class:`~astroflow.families.vicreg.pairs.PairDataset`) and the VICReg loss."""

    items = "maps"
    loss_names = ("loss", "invariance", "variance", "covariance")

    def __init__(self) -> None:
        self._steps_per_epoch = 0
        self._weights = (25.0, 25.0, 1.0)
        self._collapse_threshold = 1.0

    def check(self, cfg: Mapping[str, Any]) -> None:
        bad = [e for e in cfg["snapshot_epochs"] if not 1 <= e <= cfg["epochs"]]
        if bad:
            raise ValueError(
                f"experiment setting 'snapshot_epochs' {bad} outside 1..{cfg['epochs']} (epochs)"
            )

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[PairDataset, PairDataset]:
        # Settings the step and the validation read (the engine hands them only the parts).
        self._weights = (cfg["invariance"], cfg["variance"], cfg["covariance"])
        self._collapse_threshold = cfg["collapse_threshold"]
        return (
            PairDataset(train_paths, cfg["fields"], cfg["params"], cfg["pairs"]),
            PairDataset(val_paths, cfg["fields"], cfg["params"], cfg["pairs"]),
        )

    def arch(self, cfg: Mapping[str, Any], train_set: PairDataset) -> dict[str, Any]:
        return {
            "in_channels": len(cfg["fields"]),
            "map_size": train_set.map_size,
            "width": cfg["width"],
            "embedding_dim": cfg["embedding_dim"],
            "expander_dim": cfg["expander_dim"],
            "fields_as_views": cfg["pairs"] == "fields",
            "snapshot_epochs": list(cfg["snapshot_epochs"]),
        }

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        return {"model": VICRegNet(**arch)}

    def optimizers(
        self, cfg: Mapping[str, Any], networks: Mapping[str, nn.Module], total_steps: int
    ) -> dict[str, tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
        model = networks["model"]
        self._steps_per_epoch = total_steps // cfg["epochs"]
        warmup = max(1, round(cfg["warmup_epochs"] * self._steps_per_epoch))
        optimizer = torch.optim.AdamW(
            model.trained_parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total_steps)
        )
        return {"model": (optimizer, schedule)}

    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        """Both views through the network, the loss of the global batch, one update; at the
        end of an epoch listed in ``snapshot_epochs`` the encoder is copied.

        The variance and covariance terms are batch statistics, so the expander outputs of all
        ranks are gathered first (as the supervised families gather their outputs).
        """
        z1, z2 = self._expand(parts.calls["model"], batch.x, ctx)
        z1, z2 = ctx.world.global_batch(z1, z2)
        loss, terms = vicreg_loss(z1, z2, self._weights)
        parts.update("model", loss)
        done = ctx.step + 1
        if done % self._steps_per_epoch == 0:
            parts.networks["model"].take_snapshot(done // self._steps_per_epoch)
        return (loss.detach(), *(t.detach() for t in terms))

    def _expand(
        self, call: nn.Module, x: torch.Tensor, ctx: StepContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        x = x.to(ctx.device, non_blocking=True)
        # One forward of both views: BatchNorm then normalizes them with the same statistics.
        both = to_device(torch.cat([x[:, 0], x[:, 1]]), ctx.device)
        field = torch.arange(2, device=ctx.device).repeat_interleave(b)
        with ctx.autocast():
            z = call(both, field)
        return z[:b], z[b:]

    @torch.no_grad()
    def validate(
        self, parts: Parts, loader: DataLoader, dataset: PairDataset, world: World
    ) -> Validation:
        """The VICReg loss over the fixed validation pairs (expander outputs of the whole set
        at once, so the score does not depend on the batch size), and the collapse check."""
        model = parts.networks["model"]
        world.sync_buffers(model)
        model.eval()
        ctx = StepContext(world, "float32", 0)
        outputs = [self._expand(model, batch.x, ctx) for batch in loader]
        z1 = world.gather_rows(torch.cat([a for a, _ in outputs]).float().cpu().numpy())
        z2 = world.gather_rows(torch.cat([b for _, b in outputs]).float().cpu().numpy())
        z1, z2 = torch.from_numpy(z1), torch.from_numpy(z2)
        loss, _ = vicreg_loss(z1, z2, self._weights)
        check_collapse(self._training_mode_outputs(model, loader, ctx), self._collapse_threshold)
        return Validation(float(loss))

    def _training_mode_outputs(
        self, model: VICRegNet, loader: DataLoader, ctx: StepContext
    ) -> np.ndarray:
        """Expander outputs (2n, D) of the validation pairs with BatchNorm normalizing by each
        batch, as in a training step: what the loss's variance and covariance terms see.

        Eval mode would use the running statistics, which lag the batches early in a run and
        make a healthy embedding look collapsed. A momentum of 0 leaves them as they were.
        """
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
        model.train()
        for norm in norms:
            norm.momentum = 0.0
        try:
            outputs = [torch.cat(self._expand(model, batch.x, ctx)) for batch in loader]
        finally:
            for norm, (momentum, tracked) in zip(norms, saved, strict=True):
                norm.momentum = momentum
                norm.num_batches_tracked.copy_(tracked)
            model.eval()
        return ctx.world.gather_rows(torch.cat(outputs).float().cpu().numpy())

    def product_network(self, parts: Parts) -> nn.Module:
        return parts.networks["model"]

    def model_meta(self, cfg: Mapping[str, Any], train_set: PairDataset) -> dict[str, Any]:
        maps = train_set.maps
        return {
            "fields": list(cfg["fields"]),
            "params": list(cfg["params"]),
            "normalization": {"mean": maps.field_mean.tolist(), "std": maps.field_std.tolist()},
        }

    def describe(self, cfg: Mapping[str, Any], train_set: PairDataset) -> str:
        return (
            f"fields {cfg['fields']}, pairs: {cfg['pairs']}, embedding {cfg['embedding_dim']}, "
            f"loss weights {self._weights}"
        )
