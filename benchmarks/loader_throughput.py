"""Maps per second delivered by the training loader from HDF5 shards vs from in-memory arrays.

Both sides run the same machinery (epoch plan with D4 augmentation, batched reads, DataLoader
with the same workers); only the source of the maps differs, so the ratio is the cost of the
shards. Cases: shards that fit the memory limit (the default; read once, then served from
memory: the one-time read is reported apart) and shards streamed map by map (datasets above the
limit, e.g. the full CMD). The last column compares with the rate at which a cnn2d training
step consumes maps of that size on this machine (the engine's device choices, ``--threads``).
Target: ratio >= 0.9 and loader far above consumption. The two sides alternate epoch by epoch
and the ratio is the median over repeats of their paired ratios (this shared machine's speed
drifts by 10% over seconds). Prints a table and writes benchmarks/results/loader_throughput.json.

    python benchmarks/loader_throughput.py [--repeats 15] [--epochs 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from shard_factory import write_shard  # noqa: E402

from astroflow.batch import Batch  # noqa: E402
from astroflow.device import autocast, grad_scaler, prepare_model, to_device  # noqa: E402
from astroflow.engine.batches import EpochPlan, PlanSampler, train_loader  # noqa: E402
from astroflow.maps.dataset import D4_ORDER, ShardDataset, dihedral  # noqa: E402
from astroflow.models.cnn2d import MomentCNN2d, moment_loss  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "loader_throughput.json"
TARGET = 0.9
FIELDS = ("Mgas", "HI", "B")
PARAMS = ["Omega_m", "sigma_8"]


class ArrayDataset(Dataset):
    """The baseline: the items of ShardDataset from one array already in memory, assembled
    per batch the same way (one array, the planned D4 element per map)."""

    def __init__(self, maps: np.ndarray, targets: np.ndarray, sim_ids: np.ndarray) -> None:
        self.maps, self.targets, self.sim_ids = maps, targets, sim_ids

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, keys: list[tuple[int, int]]) -> Batch:
        index = np.array([key[0] for key in keys])
        x = torch.from_numpy(self.maps[index])
        for row, (_, element) in enumerate(keys):
            if element:
                x[row] = dihedral(x[row], element)
        return Batch(
            x, torch.from_numpy(self.targets[index]), torch.from_numpy(self.sim_ids[index])
        )


def write_shards(directory: Path, n_shards: int, sims: int, map_size: int) -> list[Path]:
    return [
        write_shard(
            directory / f"{i:03d}.h5",
            n_sims=sims,
            maps_per_sim=15,
            map_size=map_size,
            fields=FIELDS,
            seed=10 * i,
            first_sim=i * sims,
            shard=i,
        )
        for i in range(n_shards)
    ]


def epoch_loader(dataset: Dataset, workers: int, batch: int) -> tuple[PlanSampler, DataLoader]:
    """The training loader over ``dataset``, its workers started and first batch taken."""
    plan = EpochPlan(len(dataset), batch, seed=0, n_transforms=D4_ORDER)
    sampler = PlanSampler(plan)
    loader = train_loader(dataset, sampler, torch.device("cpu"), workers)
    next(iter(loader))  # start the workers
    return sampler, loader


def epoch_seconds(sampler: PlanSampler, loader: DataLoader, epoch: int) -> tuple[int, float]:
    """Maps delivered in one epoch of the plan, and the seconds it took."""
    sampler.set_epoch(epoch)
    start, count = time.perf_counter(), 0
    for x, _, _ in loader:
        count += len(x)
    return count, time.perf_counter() - start


def paired_rates(shards: Dataset, arrays: Dataset, workers: int, epochs: int, batch: int):
    """Steady-state maps per second of both sides over ``epochs`` epochs each (worker start-up
    and first batch excluded), the sides alternating epoch by epoch: on a shared machine whose
    speed drifts, both then see the same conditions."""
    sides = [epoch_loader(shards, workers, batch), epoch_loader(arrays, workers, batch)]
    totals = [[0, 0.0], [0, 0.0]]
    for epoch in range(epochs):
        for side, (sampler, loader) in enumerate(sides):
            count, seconds = epoch_seconds(sampler, loader, epoch)
            totals[side][0] += count
            totals[side][1] += seconds
    return totals[0][0] / totals[0][1], totals[1][0] / totals[1][1]


def training_rate(map_size: int, n_fields: int, batch: int, threads: int) -> float:
    """Maps per second a cnn2d training step (hidden 16, engine device choices) consumes."""
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    model = prepare_model(MomentCNN2d(n_fields, len(PARAMS), map_size, 16), device)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    scaler = grad_scaler(device)
    x, y = torch.randn(batch, n_fields, map_size, map_size), torch.rand(batch, len(PARAMS))
    steps, start = 0, 0.0
    for step in range(13):
        if step == 3:
            start = time.perf_counter()
        with autocast(device):
            mean, std = model(to_device(x, device))
        loss = moment_loss(mean, std, y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        steps += step >= 3
    rate = steps * batch / (time.perf_counter() - start)
    torch.set_num_threads(1)
    return rate


def case(name: str, paths: list[Path], fields: list[str], args, workers: int, cached: bool):
    probe = ShardDataset(paths, fields, PARAMS, in_memory=True)
    baseline = ArrayDataset(probe[list(range(len(probe)))].x.numpy(), probe.targets, probe.sim_ids)
    shards, arrays, ratios, reads = [], [], [], []
    for _ in range(args.repeats):
        dataset = ShardDataset(paths, fields, PARAMS, in_memory=cached)
        start = time.perf_counter()
        dataset.preload()
        reads.append(time.perf_counter() - start)
        shard_rate, array_rate = paired_rates(dataset, baseline, workers, args.epochs, args.batch)
        shards.append(shard_rate)
        arrays.append(array_rate)
        ratios.append(shard_rate / array_rate)
    # Rates: best of the repeats (contention only ever slows a run down); the ratio: median
    # of the repeats' paired ratios.
    return {
        "case": name,
        "map_size": probe.map_size,
        "fields": len(fields),
        "workers": workers,
        "maps": len(probe),
        "one_time_read_s": statistics.median(reads) if cached else 0.0,
        "shards_maps_per_s": max(shards),
        "arrays_maps_per_s": max(arrays),
        "ratio": statistics.median(ratios),
        "ratio_per_repeat": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)  # the paired ratios spread by +-0.05
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="threads of the training step")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = write_shards(Path(tmp) / "small", n_shards=3, sims=20, map_size=64)  # 900 maps
        large = write_shards(Path(tmp) / "large", n_shards=2, sims=10, map_size=256)  # 300 maps
        rows.append(case("in memory", small, ["Mgas"], args, 0, cached=True))
        rows.append(case("in memory", small, list(FIELDS), args, 0, cached=True))
        for workers in (0, 2):
            rows.append(case("streamed", small, ["Mgas"], args, workers, cached=False))
        for workers in (0, 2):
            rows.append(case("streamed", large, list(FIELDS), args, workers, cached=False))
    consumption = {}
    for row in rows:
        key = (row["map_size"], row["fields"])
        if key not in consumption:
            consumption[key] = training_rate(*key, args.batch, args.threads)
        row["training_maps_per_s"] = consumption[key]
        row["headroom"] = row["shards_maps_per_s"] / consumption[key]

    print(
        f"{'case':<10} {'px':>4} {'fields':>6} {'workers':>7} {'read s':>7} {'shards/s':>9} "
        f"{'arrays/s':>9} {'ratio':>6} {'train/s':>8} {'headroom':>8}"
    )
    for r in rows:
        print(
            f"{r['case']:<10} {r['map_size']:>4} {r['fields']:>6} {r['workers']:>7} "
            f"{r['one_time_read_s']:>7.3f} {r['shards_maps_per_s']:>9.0f} "
            f"{r['arrays_maps_per_s']:>9.0f} {r['ratio']:>6.2f} {r['training_maps_per_s']:>8.0f} "
            f"{r['headroom']:>7.0f}x"
        )
    for r in rows:
        verdict = "meets" if r["ratio"] >= TARGET else "misses"
        print(
            f"{r['case']} {r['map_size']}px {r['workers']} workers: {verdict} the {TARGET} target"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"target": TARGET, "args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
