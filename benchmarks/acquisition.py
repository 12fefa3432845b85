"""How much acquisition signal each preprocessing option leaves in the cached pixels.

    python benchmarks/acquisition.py ../shared/data/chest_xray_fullres_sample [--size 128]
        [--resize stretch pad crop] [--lowpass 0 1 2] [--equalize false true]

For a Kaggle-layout folder: the metadata-only baseline (cxr.shortcuts) and, for every
`prepare.resize` x `prepare.lowpass` x `prepare.equalize`, three pixel statistics of the cache a
model would train on: the mean absolute Laplacian (texture: resolution, noise, JPEG), the share
of perfectly flat rows and columns (letterbox bands, which encode the aspect ratio) and the mean
and spread of grey (exposure, contrast). Each is scored as ROC AUC from 5-fold cross-validation
grouped by patient (a logistic regression on the feature(s), out-of-fold scores), so folders
without a test split (the full-resolution sample) work too. 0.5 = no signal. Prints a Markdown
table and the processor.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from cxr.commands import processor
from cxr.images import RESIZE_MODES
from cxr.prepared import decode_many
from cxr.shortcuts import laplacian_energy, metadata_features, metadata_model
from cxr.split import scan


def cv_auc(x: np.ndarray, y: np.ndarray, groups: list[str]) -> float:
    """Out-of-fold ROC AUC of a logistic regression on `x`, folds grouped by patient."""
    x = x.reshape(len(y), -1)
    scores = np.zeros(len(y))
    for fit, held in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(x, y, groups):
        scores[held] = metadata_model().fit(x[fit], y[fit]).predict_proba(x[held])[:, 1]
    return float(roc_auc_score(y, scores))


def flat_lines(images: np.ndarray) -> np.ndarray:
    """Share of rows and columns whose pixels are all equal (a letterbox band)."""
    rows = (images.max(axis=2) == images.min(axis=2)).mean(axis=1)
    cols = (images.max(axis=1) == images.min(axis=1)).mean(axis=1)
    return (rows + cols) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="Kaggle-layout folder: {train,test}/{NORMAL,PNEUMONIA}")
    parser.add_argument("--size", type=int, default=128, help="cache side (prepare.image_size)")
    parser.add_argument("--resize", nargs="+", default=list(RESIZE_MODES), choices=RESIZE_MODES)
    parser.add_argument("--lowpass", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--equalize", nargs="+", default=["false"], choices=("false", "true"))
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    records, _ = scan(args.folder)
    rows = [vars(r) for r in records]
    y = np.array([r.label for r in records])
    groups = [r.patient for r in records]
    paths = [f"{args.folder}/{r.path}" for r in records]
    print(f"{args.folder}: {len(records)} images ({int(y.sum())} PNEUMONIA); {processor()}")
    print(f"metadata only (size, shape, colour, bit depth): ROC AUC "
          f"{cv_auc(metadata_features(rows), y, groups):.3f}")
    aspect = np.array([r.aspect for r in records])
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        q = np.percentile(aspect[y == label], [25, 50, 75])
        print(f"  width/height {name}: median {q[1]:.2f} (quartiles {q[0]:.2f}-{q[2]:.2f})")
    print("\n| resize | lowpass | equalize | Laplacian energy | flat rows/cols | grey mean, sd "
          "| all | decode s |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, sigma, equalize in itertools.product(args.resize, args.lowpass, args.equalize):
        started = time.perf_counter()
        images = decode_many(paths, args.size, args.workers, mode, sigma, equalize == "true")
        seconds = time.perf_counter() - started
        lap, flat = laplacian_energy(images), flat_lines(images)
        grey = np.stack([images.mean(axis=(1, 2)), images.std(axis=(1, 2))], axis=1)
        every = np.column_stack([lap, flat, grey])
        print(f"| {mode} | {sigma} | {equalize} | {cv_auc(lap, y, groups):.3f} | "
              f"{cv_auc(flat, y, groups):.3f} | {cv_auc(grey, y, groups):.3f} | "
              f"{cv_auc(every, y, groups):.3f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
