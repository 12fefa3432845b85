"""Decode and resize every image once into one memory-mappable uint8 array per split."""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cxr.images import decode_gray
from cxr.split import Record

SPLITS = ("train", "val", "test")


def decode_many(paths: list[Path], size: int, workers: int = 0) -> np.ndarray:
    """(N, size, size) uint8, decoded in parallel processes (JPEG draft mode inside)."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(64, len(paths) // (workers * 4)))
    decode = partial(decode_gray, size=size)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(decode, paths, chunksize=chunk)
        for i, arr in enumerate(tqdm(results, total=len(paths), desc=f"decode@{size}px",
                                     unit="img", mininterval=2)):
            out[i] = arr
    return out


def write_cache(records: list[Record], raw_root: Path, out: Path, size: int,
                workers: int = 0) -> None:
    """Write {split}.npy and manifest.csv (row order = array order) into `out`."""
    with (out / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["index", *(x.name for x in fields(Record))])
        writer.writeheader()
        for split in SPLITS:
            rows = [r for r in records if r.split == split]
            for i, r in enumerate(rows):
                writer.writerow({"index": i, **asdict(r)})
            arr = decode_many([raw_root / r.path for r in rows], size, workers)
            np.save(out / f"{split}.npy", arr)


def read_manifest(folder: str | Path) -> list[dict]:
    with (Path(folder) / "manifest.csv").open(newline="") as f:
        return [{**row, "index": int(row["index"]), "label": int(row["label"])}
                for row in csv.DictReader(f)]
