"""Peak memory of one srgan3d training step (generator, critic, R1) per crop size, with and
without gradient checkpointing, on the CPU in float32; prints a table and writes JSON.

Usage: PYTHONPATH=src python benchmarks/srgan3d_memory.py [--width 16 --critic-width 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from astroflow.memory import peak_rss_rise
from astroflow.models.srgan3d import Critic, Generator, upsample


def one_step(crop: int, factor: int, batch: int, width: int, critic_width: int, ckpt: bool):
    generator = Generator(4, factor, width, checkpointing=ckpt)
    critic = Critic(4, critic_width)
    p = generator.padding
    x = torch.randn(batch, 4, crop + 2 * p, crop + 2 * p, crop + 2 * p)
    real = torch.randn(batch, 4, *(factor * crop,) * 3, requires_grad=True)

    def step() -> None:
        up = upsample(x, factor, p)
        fake = generator(x)
        scores = critic(torch.cat([real, fake.detach()]), torch.cat([up, up]))
        (grad,) = torch.autograd.grad(scores[:batch].sum(), real, create_graph=True)
        (F.softplus(scores).mean() + grad.square().sum()).backward()
        F.softplus(-critic(fake, up)).mean().backward()

    # Warm up on a one-voxel crop: it loads the kernels and the checkpointing machinery
    # (about 100 MB of code) but leaves no freed blocks of the size measured to reuse.
    tiny = torch.randn(1, 4, 1 + 2 * p, 1 + 2 * p, 1 + 2 * p)
    generator(tiny).sum().backward()
    start = time.perf_counter()
    _, peak = peak_rss_rise(step)
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--critic-width", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--crops", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--one", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.one:  # a fresh process per measurement
        crop, ckpt = args.one
        print(
            json.dumps(
                one_step(crop, args.factor, args.batch, args.width, args.critic_width, bool(ckpt))
            )
        )
        return
    rows = []
    print("crop_lr  crop_hr  checkpointing  peak_MB  seconds")
    for crop in args.crops:
        for ckpt in (False, True):
            command = [sys.executable, __file__, "--one", str(crop), str(int(ckpt))]
            command += ["--width", str(args.width), "--critic-width", str(args.critic_width)]
            command += ["--batch", str(args.batch), "--factor", str(args.factor)]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            peak, seconds = json.loads(result.stdout)
            rows.append(
                {
                    "crop": crop,
                    "hr": crop * args.factor,
                    "checkpointing": ckpt,
                    "peak_mb": round(peak, 1),
                    "seconds": round(seconds, 2),
                }
            )
            print(f"{crop:7d}  {crop * args.factor:7d}  {ckpt!s:>13}  {peak:7.1f}  {seconds:7.2f}")
    out = Path(__file__).parent / "results" / "srgan3d_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
