"""Validate a Kaggle-layout folder and copy its good images into data/raw.

Every file is read once: hashed (to find exact duplicates) and fully decoded (to find corrupt,
truncated and non-image files). Bad files are excluded and listed with their reason; the
source folder is only read, never changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from cxr import CLASSES, CxrError
from cxr.atomic import atomic_dir
from cxr.images import IMAGE_EXTS, ImageError, decode_gray

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "test")
IGNORED = ("__MACOSX", ".DS_Store", "Thumbs.db")


def _inspect(path: Path) -> tuple[str, str | None]:
    """(sha256, None) for a good image, (sha256, reason) for a bad one."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() not in IMAGE_EXTS:
        return digest, f"unexpected file type {path.suffix or '(none)'}"
    try:
        decode_gray(data, size=32)
    except ImageError as err:
        return digest, str(err)
    return digest, None


def _placement(rel: Path) -> str | None:
    """None if `rel` sits at split/CLASS/file, else why it does not."""
    parts = rel.parts
    if len(parts) != 3 or parts[0] not in SPLITS or parts[1] not in CLASSES:
        return "unexpected location (expected {train,val,test}/{NORMAL,PNEUMONIA}/file)"
    return None


def _ignored(rel: Path) -> bool:
    return any(p in IGNORED or p.startswith("._") for p in rel.parts)


def find_root(src: Path) -> Path:
    """The folder holding train/ and test/: `src` itself or one nested folder below it."""
    if all((src / s).is_dir() for s in REQUIRED_SPLITS):
        return src
    for candidate in sorted(p for p in src.rglob("train") if p.is_dir()):
        parent = candidate.parent
        if (parent / "test").is_dir() and not _ignored(parent.relative_to(src)):
            return parent
    raise CxrError(f"{src}: no train/ and test/ folders found; expected the Kaggle layout "
                   "chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg.")


def ingest(src: str | Path, dst: str | Path, max_excluded_fraction: float,
           workers: int = 0) -> dict:
    """Copy the good images of `src` to `dst` (atomically) and return the ingest report."""
    src = Path(src)
    if not src.is_dir():
        raise CxrError(f"{src}: not a folder; set data.path to a Kaggle-layout folder "
                       "(e.g. -S data.path=/path/to/chest_xray).")
    root = find_root(src)
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not _ignored(p.relative_to(root)))
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        inspected = list(tqdm(pool.map(_inspect, files, chunksize=32), total=len(files),
                              desc="validate", unit="img", mininterval=2))

    excluded, accepted, by_hash = [], [], defaultdict(list)
    for path, (digest, reason) in zip(files, inspected, strict=True):
        rel = path.relative_to(root)
        reason = _placement(rel) or reason
        if reason:
            excluded.append({"path": rel.as_posix(), "reason": reason})
        else:
            accepted.append(rel)
            by_hash[digest].append(rel.as_posix())

    counts = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    for rel in accepted:
        counts[rel.parts[0]][rel.parts[1]] += 1
    warnings = []
    for split in SPLITS:
        for cls in CLASSES:
            present = split in REQUIRED_SPLITS or sum(counts[split].values())
            if counts[split][cls] == 0 and present:
                message = f"{split}/{cls} has no valid images"
                if split in REQUIRED_SPLITS:
                    raise CxrError(f"{root}: {message}; every class of train and test needs "
                                   "images. See the excluded files listed above, if any.")
                warnings.append(message + " (val is merged into train, so this is harmless)")

    groups = sorted(g for g in by_hash.values() if len(g) > 1)
    splits_of = [{p.split("/")[0] for p in g} for g in groups]
    crossing = [g for g, s in zip(groups, splits_of, strict=True) if "test" in s and len(s) > 1]
    n_files = len(files)
    report = {
        "source": str(src),
        "files": n_files,
        "accepted": len(accepted),
        "excluded": len(excluded),
        "excluded_fraction": round(len(excluded) / n_files, 6) if n_files else 0.0,
        "counts": counts,
        "duplicates": {"groups": len(groups), "files": sum(len(g) for g in groups),
                       "groups_crossing_train_test": len(crossing)},
        "excluded_files": excluded,
        "duplicate_groups": groups,
        "warnings": warnings,
    }
    print(f"ingest: {len(accepted)} of {n_files} files accepted, {len(excluded)} excluded, "
          f"{len(groups)} duplicate groups ({len(crossing)} crossing train/test)")
    for item in excluded[:20]:
        print(f"  excluded {item['path']}: {item['reason']}")
    if report["excluded_fraction"] > max_excluded_fraction:
        raise CxrError(f"{root}: {len(excluded)} of {n_files} files are unreadable or misplaced "
                       f"({report['excluded_fraction']:.1%} > data.max_excluded_fraction="
                       f"{max_excluded_fraction}); check the source or raise the param.")

    with atomic_dir(dst) as tmp:
        for rel in accepted:
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, tmp / rel)
    return report
