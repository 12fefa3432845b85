"""Another hospital's X-rays: obtain the folder (`external.path`, or a synthetic second
hospital), cache it at the Kermany cache's geometry, and read its metadata.

Layout of `external.path`: {NORMAL,PNEUMONIA}/<file> and an optional metadata.csv with columns
file (relative, e.g. NORMAL/x.png), patient_id, age, sex, view (AP/PA). Without metadata each
file is its own patient and the age and view strata are left out.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from cxr import CLASSES, CxrError
from cxr.atomic import atomic_dir
from cxr.images import IMAGE_EXTS, ImageError, acquisition, decode_gray
from cxr.prepared import DEFAULT_PREPROCESS, decode_many
from cxr.synthetic import generate_external

METADATA = "metadata.csv"
COLUMNS = ("file", "label", "patient", "age", "sex", "view", "file_size", "width", "height",
           "aspect")


def materialise_external(cfg: dict, lesion_gain: float, dst: str | Path) -> dict:
    """Write the external set to `dst` (atomically): generated, or the good images of
    `external.path` copied with its metadata.csv. Returns counts for the report."""
    with atomic_dir(dst) as tmp:
        if cfg["source"] == "synthetic":
            syn = cfg["synthetic"]
            generate_external(tmp, syn["n"], syn["image_size"], syn["seed"], lesion_gain)
            excluded = []
        else:
            excluded = _copy_folder(Path(cfg["path"]), tmp)
        counts = {c: len(list((tmp / c).iterdir())) for c in CLASSES}
    return {"source": cfg["source"], **counts, "excluded": excluded}


def _copy_folder(src: Path, dst: Path) -> list[dict]:
    if not src.is_dir():
        raise CxrError(f"external.path={src}: not a folder; point it at {{NORMAL,PNEUMONIA}}/ "
                       "images with an optional metadata.csv (README, External test), or use "
                       "-S external.source=synthetic.")
    excluded = []
    for cls in CLASSES:
        files = sorted(p for p in (src / cls).glob("*") if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise CxrError(f"external.path={src}: no images in {cls}/; both classes are needed "
                           "for ROC AUC.")
        (dst / cls).mkdir(parents=True)
        for path in files:
            try:
                decode_gray(path.read_bytes(), size=32)  # a full decode: truncated files fail
            except ImageError as err:
                excluded.append({"path": f"{cls}/{path.name}", "reason": str(err)})
                continue
            shutil.copyfile(path, dst / cls / path.name)
    if (src / METADATA).is_file():
        shutil.copyfile(src / METADATA, dst / METADATA)
    return excluded


def _metadata(root: Path) -> dict[str, dict]:
    path = root / METADATA
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "file" not in rows[0]:
        raise CxrError(f"{path}: no `file` column; expected file, patient_id, age, sex, view.")
    return {r["file"]: r for r in rows}


def scan_external(root: str | Path) -> list[dict]:
    """One row per image (COLUMNS): label from the folder, the rest from metadata.csv and the
    file's header. Missing metadata is left empty."""
    root = Path(root)
    meta = _metadata(root)
    rows = []
    for label, cls in enumerate(CLASSES):
        for path in sorted((root / cls).glob("*")):
            rel = f"{cls}/{path.name}"
            m = meta.get(rel, {})
            info = acquisition(path.read_bytes())
            rows.append({"file": rel, "label": label,
                         "patient": m.get("patient_id") or f"file:{rel}",
                         "age": m.get("age", ""), "sex": m.get("sex", ""),
                         "view": (m.get("view") or "").upper(),
                         **{k: info[k] for k in ("file_size", "width", "height", "aspect")}})
    return rows


def write_external_cache(raw: str | Path, out: str | Path, preprocess: dict,
                         workers: int = 0) -> int:
    """external.npy (uint8, the Kermany cache's side, resize, low-pass and equalisation) and
    manifest.csv."""
    raw, pre = Path(raw), DEFAULT_PREPROCESS | preprocess
    rows = scan_external(raw)
    images = decode_many([raw / r["file"] for r in rows], pre["image_size"], workers,
                         pre["resize"], pre["lowpass"], pre["equalize"])
    with atomic_dir(out) as tmp:
        np.save(tmp / "external.npy", images)
        with (tmp / "manifest.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


def read_external(folder: str | Path) -> tuple[np.ndarray, list[dict]]:
    """The cached external images and their manifest rows (label, file_size: int)."""
    folder = Path(folder)
    path = folder / "external.npy"
    if not path.is_file():
        raise CxrError(f"{path}: not found; run `dvc repro external` first.")
    with (folder / "manifest.csv").open(newline="") as f:
        rows = [{**r, "label": int(r["label"]), "file_size": int(r["file_size"])}
                for r in csv.DictReader(f)]
    return np.load(path), rows
