"""Training images/s: the project's loop on the uint8 cache against a naive torchvision loop.

    python benchmarks/train_speed.py [--src ../shared/data/chest_xray/train] [--n 1000]
                                     [--size 64] [--batch-size 32] [--epochs 2]
                                     [--full-resolution]

Both train the same CNN8 with the same batch size, optimizer and loss on the same images:
- naive: torchvision ImageFolder + transforms (decode JPEG, grayscale, resize, to tensor) in a
  DataLoader with one worker per core, decoding every image every epoch;
- project: `cxr.train.fit` (bfloat16, channels_last, as in params.yaml) on the array that
  `prepare` writes once (its build time is printed
  separately: it is paid once per dataset, not per epoch or per model).

`--full-resolution` first upscales the chosen images to 1500x1200 JPEGs, the size of Kermany's
originals (the shared copy is 224 px, which flatters the naive loop).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from prepare_speed import full_resolution
from torch import nn
from torchvision import datasets, transforms

from cxr.inputs import Split
from cxr.models import build_model
from cxr.prepared import decode_many
from cxr.train import Phase, fit


class NoLog:
    def log_metric(self, *args) -> None:
        pass

    def next_step(self) -> None:
        pass


def naive(dataset, size: int, batch_size: int, epochs: int, workers: int) -> float:
    torch.manual_seed(0)
    model = build_model("cnn8")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=workers)
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return len(dataset) * epochs / (time.perf_counter() - start)


def project(split: Split, batch_size: int, epochs: int) -> float:
    generator = torch.manual_seed(0)
    model = build_model("cnn8")
    tiny_val = Split(split.images[:1], split.labels[:1], [], [], split.cache_size)
    start = time.perf_counter()
    fit(model, split, tiny_val, [Phase("bench", epochs, 1e-3)], batch_size=batch_size,
        weight_decay=0.0, label_smoothing=0.0, sampler="none", augment=None,
        generator=generator, device=torch.device("cpu"), live=NoLog(), precision="bf16")
    return len(split) * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path("../shared/data/chest_xray/train"))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--full-resolution", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.full_resolution:
            full_resolution(args.src, args.n, Path(tmp))
            args.src = Path(tmp)
        run(args)


def run(args: argparse.Namespace) -> None:
    workers = os.cpu_count() or 1

    transform = transforms.Compose([transforms.Grayscale(), transforms.Resize((args.size,
                                    args.size)), transforms.ToTensor()])
    dataset = datasets.ImageFolder(str(args.src), transform=transform)
    step = max(1, len(dataset) // args.n)
    dataset = torch.utils.data.Subset(dataset, list(range(0, len(dataset), step))[: args.n])
    files = [Path(dataset.dataset.samples[i][0]) for i in dataset.indices]
    labels = torch.tensor([dataset.dataset.samples[i][1] for i in dataset.indices])
    print(f"{len(files)} images from {args.src}, {args.size} px, batch {args.batch_size}, "
          f"{args.epochs} epochs, {torch.get_num_threads()} torch threads, {workers} cores")

    start = time.perf_counter()
    cache = torch.from_numpy(decode_many(files, args.size))
    print(f"cache build (once per dataset): {len(files) / (time.perf_counter() - start):.0f} "
          "images/s")
    split = Split(cache, labels, [], [], args.size)
    results = {"naive": naive(dataset, args.size, args.batch_size, args.epochs, workers),
               "project": project(split, args.batch_size, args.epochs)}
    for name, rate in results.items():
        print(f"{name:8s} {rate:8.1f} training images/s")
    print(f"ratio    {results['project'] / results['naive']:8.1f}x")


if __name__ == "__main__":
    main()
