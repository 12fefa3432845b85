"""Patients from Kermany file names, and a patient-level, class-stratified train/val split."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr import CLASSES

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
                records.append(Record(path.relative_to(root).as_posix(), label,
                                      "test" if split == "test" else "train", patient, pathogen))
    return records, unknown


def assign_val(records: list[Record], val_fraction: float, seed: int) -> None:
    """Move about `val_fraction` of the non-test patients to val, stratified by class."""
    # Imported here: `Record` is read by every training stage, which needs no scikit-learn
    # (1.1 s of the 3.1 s `import cxr.trainers` takes here).
    from sklearn.model_selection import StratifiedGroupKFold

    pool = [r for r in records if r.split != "test"]
    n_splits = max(2, round(1 / val_fraction))
    y = np.array([r.label for r in pool])
    groups = np.array([r.patient for r in pool])
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, val_idx = next(folds.split(np.zeros(len(pool)), y, groups))
    for i in val_idx:
        pool[i].split = "val"


def _count(records: Iterable[Record]) -> dict:
    records = list(records)
    out = {"images": len(records), "patients": len({r.patient for r in records})}
    for label, cls in enumerate(CLASSES):
        sub = [r for r in records if r.label == label]
        out[cls] = {"images": len(sub), "patients": len({r.patient for r in sub})}
    return out


def split_report(records: list[Record], unknown_names: int) -> dict:
    patients = {s: {r.patient for r in records if r.split == s} for s in ("train", "val", "test")}
    return {
        **{s: _count(r for r in records if r.split == s) for s in ("train", "val", "test")},
        "pathogens": {p: sum(r.pathogen == p for r in records)
                      for p in ("normal", "bacterial", "viral", "unknown")},
        "shared_patients_train_val": len(patients["train"] & patients["val"]),
        "shared_patient_ids_trainval_test": len((patients["train"] | patients["val"])
                                                & patients["test"]),
        "names_without_patient": unknown_names,
    }
