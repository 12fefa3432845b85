"""How well the classes separate without looking at any anatomy: a logistic regression on how
each file was saved (size, shape, colour mode), and a texture statistic of the cached pixels.

On Kermany the classes were acquired and saved differently, so these scores are the "shortcut
ceiling": what a model could reach by reading the acquisition instead of the lungs.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import laplace
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ("log_file_size", "log_pixels", "width", "height", "aspect", "colour", "bit_depth")


def metadata_features(rows: list[dict]) -> np.ndarray:
    """(N, len(FEATURES)) from manifest rows (cxr.images.acquisition fields)."""
    return np.array([[np.log(r["file_size"]), np.log(r["width"] * r["height"]), r["width"],
                      r["height"], r["aspect"], float(r["color_mode"] not in ("L", "I;16")),
                      r["bit_depth"]] for r in rows], dtype=np.float64)


def laplacian_energy(images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Mean absolute Laplacian per uint8 (N, H, W) image: sharpness, noise and JPEG blockiness."""
    out = [np.abs(laplace(images[i:i + chunk].astype(np.float32), axes=(1, 2))).mean(axis=(1, 2))
           for i in range(0, len(images), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def oriented_auc(y_fit: np.ndarray, x_fit: np.ndarray, y: np.ndarray, x: np.ndarray) -> float:
    """ROC AUC of a single statistic on (y, x), its direction chosen on (y_fit, x_fit)."""
    if len(np.unique(y)) < 2 or len(np.unique(y_fit)) < 2:
        return float("nan")
    sign = 1.0 if roc_auc_score(y_fit, x_fit) >= 0.5 else -1.0
    return float(roc_auc_score(y, sign * x))


def metadata_model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def shortcut_report(rows: dict[str, list[dict]], images: dict[str, np.ndarray]) -> dict:
    """Metadata logistic regression and Laplacian energy, fitted on train, scored per split.

    `rows` and `images`: per split (train, val, test), manifest rows and the cached pixels.
    """
    y = {s: np.array([r["label"] for r in rows[s]]) for s in rows}
    x = {s: metadata_features(rows[s]) for s in rows}
    model = metadata_model().fit(x["train"], y["train"])
    lap = {s: laplacian_energy(images[s]) for s in images}
    report = {"metadata": {}, "laplacian": {}, "metadata_features_test": {}}
    for split in ("train", "val", "test"):
        report["metadata"][f"{split}_roc_auc"] = float(
            roc_auc_score(y[split], model.predict_proba(x[split])[:, 1]))
        report["laplacian"][f"{split}_roc_auc"] = oriented_auc(y["train"], lap["train"],
                                                               y[split], lap[split])
    for j, name in enumerate(FEATURES):
        report["metadata_features_test"][name] = oriented_auc(
            y["train"], x["train"][:, j], y["test"], x["test"][:, j])
    return report


def external_acquisition(rows: list[dict], images: np.ndarray, folds: int = 5) -> dict:
    """The acquisition-only baseline on the external images: a logistic regression on file size
    and view (AP), cross-validated in patient groups within that set, and the Laplacian
    energy's AUC in its better direction. What a model could reach there from how the images
    were taken, not from the lungs."""
    y = np.array([r["label"] for r in rows])
    groups = [r["patient"] for r in rows]
    x = np.array([[np.log(r["file_size"]), float(r.get("view") == "AP")] for r in rows])
    k = min(folds, len(set(groups)))
    p = np.full(len(y), np.nan)
    for train, test in GroupKFold(n_splits=k).split(x, y, groups):
        if len(np.unique(y[train])) == 2:
            p[test] = metadata_model().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    ok = np.isfinite(p)
    lap = laplacian_energy(np.asarray(images))
    auc = roc_auc_score(y, lap) if len(np.unique(y)) == 2 else float("nan")
    return {"features": ["log_file_size", "view_ap"], "folds": k,
            "metadata_roc_auc_cv": float(roc_auc_score(y[ok], p[ok])) if ok.any() else None,
            "laplacian_roc_auc_best_direction": float(max(auc, 1 - auc)),
            "view_recorded": int(sum(r.get("view") in ("AP", "PA") for r in rows))}
