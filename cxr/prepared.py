"""Decode and resize every image once into one memory-mappable uint8 array per split."""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cxr.atomic import write_json
from cxr.images import decode_gray
from cxr.split import Record

SPLITS = ("train", "val", "test")
PREPROCESS = "preprocess.json"


def cache_side(records: list[Record], image_size: int) -> int:
    """The cache's side: `prepare.image_size`, or the smallest side among the raw images where
    that is smaller. Images are never upsampled: a larger cache of small images (the
    synthetic default's phantoms) holds no more detail, only more pixels to train on."""
    sides = [min(r.width, r.height) for r in records if r.width and r.height]
    return min([image_size, *sides])


def decode_many(paths: list[Path], size: int, workers: int = 0, resize: str = "stretch",
                lowpass: float = 0.0, equalize: bool = False) -> np.ndarray:
    """(N, size, size) uint8, decoded in parallel processes (JPEG draft mode inside)."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(64, len(paths) // (workers * 4)))
    decode = partial(decode_gray, size=size, resize=resize, lowpass=lowpass, equalize=equalize)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(decode, paths, chunksize=chunk)
        for i, arr in enumerate(tqdm(results, total=len(paths), desc=f"decode@{size}px",
                                     unit="img", mininterval=2)):
            out[i] = arr
    return out


def write_cache(records: list[Record], raw_root: Path, out: Path, size: int,
                workers: int = 0, resize: str = "stretch", lowpass: float = 0.0,
                equalize: bool = False) -> None:
    """Write {split}.npy, manifest.csv (row order = array order) and preprocess.json (how the
    pixels were made, which training copies into each checkpoint for `cxr.predict`)."""
    write_json(out / PREPROCESS, {"image_size": size, "resize": resize, "lowpass": lowpass,
                                  "equalize": equalize})
    with (out / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["index", *(x.name for x in fields(Record))])
        writer.writeheader()
        for split in SPLITS:
            rows = [r for r in records if r.split == split]
            for i, r in enumerate(rows):
                writer.writerow({"index": i, **asdict(r)})
            arr = decode_many([raw_root / r.path for r in rows], size, workers, resize,
                              lowpass, equalize)
            np.save(out / f"{split}.npy", arr)


NUMERIC = {"index": int, "label": int, "width": int, "height": int, "aspect": float,
           "file_size": int, "bit_depth": int}


def read_manifest(folder: str | Path) -> list[dict]:
    with (Path(folder) / "manifest.csv").open(newline="") as f:
        return [{**row, **{k: t(row[k]) for k, t in NUMERIC.items() if row.get(k)}}
                for row in csv.DictReader(f)]


def read_preprocess(folder: str | Path) -> dict:
    """How `prepare` made the cached pixels; caches older than the file were stretched."""
    path = Path(folder) / PREPROCESS
    return {**DEFAULT_PREPROCESS, **(json.loads(path.read_text()) if path.is_file() else {})}


DEFAULT_PREPROCESS = {"resize": "stretch", "lowpass": 0.0, "equalize": False}
