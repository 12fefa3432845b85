"""Patients from Kermany file names, and a train/val split by connected groups of images
(same patient or byte-identical content), stratified by class."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr import CLASSES, CxrError
from cxr.images import acquisition

PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
NORMAL_ID = re.compile(r"^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)
PATHOGENS = {"bacteria": "bacterial", "virus": "viral"}


@dataclass
class Record:
    path: str      # relative to the raw dataset root, e.g. train/NORMAL/IM-0115-0001.jpeg
    label: int     # 0 NORMAL, 1 PNEUMONIA
    split: str     # train | val | test
    patient: str
    pathogen: str  # normal | bacterial | viral | unknown
    sha256: str = ""  # of the file's bytes: exact duplicates share it
    # How the file was saved (cxr.images.acquisition): the classes of Kermany differ in all of it.
    width: int = 0
    height: int = 0
    aspect: float = 0.0
    file_size: int = 0
    color_mode: str = ""
    bit_depth: int = 0


def parse_name(stem: str, label: int) -> tuple[str | None, str]:
    """(patient, pathogen) from a file stem; patient None when the name has no known pattern."""
    if m := PERSON.match(stem):
        return m.group(1).lower(), PATHOGENS[m.group(2).lower()]
    pathogen = "normal" if label == 0 else "unknown"
    if m := NORMAL_ID.match(stem):
        return m.group(1).upper(), pathogen
    return None, pathogen


def scan(root: str | Path) -> tuple[list[Record], int]:
    """Records of every image under root/{train,val,test}/{NORMAL,PNEUMONIA}; val joins train.

    Returns the records and how many names fell back to one patient per file.
    """
    root = Path(root)
    records, unknown = [], 0
    for split in ("train", "val", "test"):
        for label, cls in enumerate(CLASSES):
            for path in sorted((root / split / cls).glob("*")):
                patient, pathogen = parse_name(path.stem, label)
                if patient is None:
                    unknown += 1
                    patient = f"file:{path.stem}"
                data = path.read_bytes()
                records.append(Record(path.relative_to(root).as_posix(), label,
                                      "test" if split == "test" else "train", patient, pathogen,
                                      hashlib.sha256(data).hexdigest(), **acquisition(data)))
    return records, unknown


def link_groups(records: list[Record]) -> list[int]:
    """Group index per record: records sharing a patient or a content hash, transitively."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        for key in (("patient", r.patient), ("sha256", r.sha256)):
            if not key[1]:
                continue
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    roots = [root(i) for i in range(len(records))]
    index = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return [index[r] for r in roots]


def assign_val(records: list[Record], val_fraction: float, seed: int) -> None:
    """Move `val_fraction` of the non-test images to val, in whole linked groups, per class.

    Groups (`link_groups`) keep a patient's images, and exact duplicates, on one side. Within
    each class (a group's majority label), groups are taken in a seeded random order whenever
    one brings the class's val count closer to its target, so the fraction obtained is the
    one asked for, to the granularity of the groups.
    """
    pool = [r for r in records if r.split != "test"]
    members: dict[int, list[Record]] = defaultdict(list)
    for r, g in zip(pool, link_groups(pool), strict=True):
        members[g].append(r)
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(CLASSES):
        groups = [m for m in members.values()
                  if round(np.mean([r.label for r in m]) + 1e-9) == label]
        target = val_fraction * sum(len(m) for m in groups)
        taken = 0
        for i in rng.permutation(len(groups)):
            if abs(taken + len(groups[i]) - target) < abs(taken - target):
                taken += len(groups[i])
                for r in groups[i]:
                    r.split = "val"
        for split in ("train", "val"):
            if not any(r.split == split and r.label == label for r in pool):
                raise CxrError(f"prepare.val_fraction={val_fraction} leaves no {cls} images in "
                               f"{split} ({len(groups)} {cls} patient groups); choose a "
                               "fraction nearer 0.2 or use more images.")


def _count(records: Iterable[Record]) -> dict:
    records = list(records)
    out = {"images": len(records), "patients": len({r.patient for r in records})}
    for label, cls in enumerate(CLASSES):
        sub = [r for r in records if r.label == label]
        out[cls] = {"images": len(sub), "patients": len({r.patient for r in sub})}
    return out


def split_report(records: list[Record], unknown_names: int, val_fraction: float) -> dict:
    patients = {s: {r.patient for r in records if r.split == s} for s in ("train", "val", "test")}
    by_hash: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.sha256:
            by_hash[r.sha256].append(r.split)
    duplicates = [set(s) for s in by_hash.values() if len(s) > 1]
    n_pool = sum(r.split != "test" for r in records)
    return {
        **{s: _count(r for r in records if r.split == s) for s in ("train", "val", "test")},
        "val_fraction": {"asked": val_fraction,
                         "obtained": round(sum(r.split == "val" for r in records)
                                           / max(n_pool, 1), 4)},
        "pathogens": {p: sum(r.pathogen == p for r in records)
                      for p in ("normal", "bacterial", "viral", "unknown")},
        "shared_patients_train_val": len(patients["train"] & patients["val"]),
        "shared_patient_ids_trainval_test": len((patients["train"] | patients["val"])
                                                & patients["test"]),
        "duplicate_groups": {
            "total": len(duplicates),
            "across_train_val": sum({"train", "val"} <= s for s in duplicates),
            "across_trainval_test": sum("test" in s and len(s) > 1 for s in duplicates),
        },
        "names_without_patient": unknown_names,
    }
