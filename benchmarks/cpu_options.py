"""Training-step throughput of each model on this CPU with and without channels_last and
bfloat16 autocast, to decide which the training loop should use.

    python benchmarks/cpu_options.py [--size 64] [--batch-size 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from torch import nn

from cxr.models import build_model


def images_per_second(arch: str, size: int, batch: int, steps: int, channels_last: bool,
                      bf16: bool) -> float:
    torch.manual_seed(0)
    model = build_model(arch)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 2, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        with cast:
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"{args.size} px, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"{'model':10s} {'fp32':>8s} {'ch_last':>8s} {'bf16':>8s} {'both':>8s}  images/s")
    for arch in ("cnn8", "cnn11", "resnet34"):
        steps = args.steps if arch != "resnet34" else max(3, args.steps // 4)
        rates = [images_per_second(arch, args.size, args.batch_size, steps, cl, bf)
                 for cl, bf in ((False, False), (True, False), (False, True), (True, True))]
        print(f"{arch:10s} " + " ".join(f"{r:8.0f}" for r in rates))


if __name__ == "__main__":
    main()
