"""Builders of small datasets and archives for the tests."""

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int = 0, size: int = 40, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), "L")
    buf = io.BytesIO()
    img.convert(mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_images(folder: Path, prefix: str, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}{i}.jpeg").write_bytes(jpeg_bytes(seed + i))


def kaggle_folder(root: Path, n: int = 4) -> Path:
    """A small valid Kaggle layout: train and test, both classes, Kermany-style names."""
    for split, offset in (("train", 0), ("test", 100)):
        write_images(root / split / "NORMAL", f"IM-{offset:02d}", n, offset)
        write_images(root / split / "PNEUMONIA", f"person{offset}_bacteria_", n, offset + 50)
    return root


def zip_of(folder: Path, prefix: str = "ChestXRay2017/chest_xray/",
           extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_predictions(folder, y, p):
    folder.mkdir(parents=True)
    with (folder / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "patient", "pathogen", "label", "probability"])
        for i, (label, prob) in enumerate(zip(y, p, strict=True)):
            w.writerow([i, f"p{i // 2}", "normal", label, prob])


def metrics_file(accuracy: float, tn: int, tp: int, tta: bool) -> dict:
    ci = {"lo": accuracy - 0.1, "hi": accuracy + 0.1}
    return {"threshold": 0.5, "tta": tta, "images": {"val": 10, "test": 17},
            "test": {"accuracy": accuracy, "tn": tn, "tp": tp, "sensitivity": 0.9,
                     "specificity": 0.25, "roc_auc": 0.875},
            "test_ci95": {"accuracy": ci, "sensitivity": {"lo": 0.8, "hi": 1.0},
                          "specificity": {"lo": 0.0, "hi": 0.5},
                          "roc_auc": {"lo": 0.75, "hi": 0.95}},
            "test_disjoint": {"images": 12, "accuracy": 0.75, "sensitivity": 1.0,
                              "specificity": None, "roc_auc": None},
            "val_in_sample": {"accuracy": 0.96, "roc_auc": 0.991}}


class NoLive:
    """Stands in for dvclive.Live in `fit`."""

    def log_metric(self, *args, **kwargs):
        pass

    def next_step(self):
        pass
