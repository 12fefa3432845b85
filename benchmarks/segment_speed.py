"""Training throughput of the lung U-Net (`cxr.segment.UNet`) per width, depth, input side and
memory format: forward, backward and an AdamW step on a batch of 32, on this machine's CPU.

    python benchmarks/segment_speed.py
"""

import time

import torch
import torch.nn.functional as F

from cxr.commands import processor
from cxr.unet import UNet

VARIANTS = [  # width, depth, input side, channels-last
    (8, 3, 64, False), (8, 3, 64, True), (16, 3, 64, True), (8, 4, 64, True),
    (8, 3, 48, True), (4, 3, 64, True), (8, 2, 64, True)]


def throughput(width: int, depth: int, size: int, channels_last: bool, steps: int = 5) -> float:
    torch.manual_seed(0)
    model = UNet(width, depth)
    x = torch.rand(32, 1, size, size)
    y = (torch.rand(32, size, size) > 0.5).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    for i in range(steps + 3):  # three warm-up steps
        if i == 3:
            started = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 32 * steps / (time.perf_counter() - started)


def main() -> None:
    print(f"{processor()}, {torch.get_num_threads()} threads")
    print("| width | depth | input | channels-last | parameters | img/s |")
    print("|---|---|---|---|---|---|")
    for width, depth, size, cl in VARIANTS:
        params = sum(p.numel() for p in UNet(width, depth).parameters())
        print(f"| {width} | {depth} | {size} | {cl} | {params:,} | "
              f"{throughput(width, depth, size, cl):.0f} |")


if __name__ == "__main__":
    main()
