"""Time the project's preprocessing (draft-mode JPEG decoding, parallel workers) against a naive
loop (PIL open -> convert("L") -> resize, one process) on the same full-resolution files.

    python benchmarks/prepare_speed.py [--src ../shared/data/chest_xray] [--n 300] [--size 128]

Kermany's originals are 1000-2900 px; when the source holds smaller images (the shared copy is
224 px), the benchmark first upscales --n of them to 1500x1200 and re-encodes them as JPEG.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from cxr.prepared import decode_many


def full_resolution(src: Path, n: int, out: Path) -> list[Path]:
    """`n` JPEGs spread over `src`, upscaled to 1500x1200 into `out` (same sub-folders) when
    smaller than 1000 px."""
    every = sorted(src.rglob("*.jpeg"))
    paths = every[:: max(1, len(every) // n)][:n]
    if not paths:
        sys.exit(f"{src}: no .jpeg files found")
    result = []
    for path in paths:
        with Image.open(path) as img:
            if min(img.size) >= 1000:
                result.append(path)
                continue
            target = out / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            img.convert("L").resize((1500, 1200), Image.Resampling.BICUBIC).save(target,
                                                                                quality=95)
            result.append(target)
    return result


def naive(paths: list[Path], size: int) -> None:
    for path in paths:
        with Image.open(path) as img:
            img.convert("L").resize((size, size), Image.Resampling.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path("../shared/data/chest_xray"))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = full_resolution(args.src, args.n, Path(tmp))
        with Image.open(paths[0]) as img:
            print(f"{len(paths)} JPEGs of {img.size[0]}x{img.size[1]} px -> {args.size} px")
        timings = {}
        for name, run in (("naive", lambda: naive(paths, args.size)),
                          ("project", lambda: decode_many(paths, args.size, args.workers))):
            start = time.perf_counter()
            run()
            timings[name] = len(paths) / (time.perf_counter() - start)
            print(f"{name:8s} {timings[name]:8.1f} images/s")
    print(f"ratio    {timings['project'] / timings['naive']:8.1f}x")


if __name__ == "__main__":
    main()
