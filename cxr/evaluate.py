"""Evaluate one trained model: threshold from validation, metrics and plots on test."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from dvclive import Live

from cxr import CLASSES
from cxr.data import Split, load_split
from cxr.io import write_json
from cxr.metrics import binary_metrics, bootstrap_ci, choose_threshold, rounded
from cxr.models import load_checkpoint, threshold_path
from cxr.train import predict_proba, select_device


def score_splits(params: dict, data_dir: str | Path, model_path: str | Path
                 ) -> tuple[dict, Split, Split, np.ndarray, np.ndarray, float]:
    """(checkpoint, val, test, val scores, test scores, threshold fitted on val) of a model."""
    cfg = params["evaluate"]
    device = select_device(params["device"])
    model, ckpt = load_checkpoint(model_path)
    model.to(device)
    size = ckpt["image_size"]
    val, test = load_split(data_dir, "val", size), load_split(data_dir, "test", size)
    p_val = predict_proba(model, val.images, device, cfg["tta"])
    p_test = predict_proba(model, test.images, device, cfg["tta"])
    threshold = choose_threshold(val.labels.numpy(), p_val, cfg["threshold"],
                                 cfg["target_sensitivity"])
    return ckpt, val, test, p_val, p_test, threshold


def evaluate_model(params: dict, data_dir: str | Path, model_path: str | Path,
                   out_dir: str | Path, metrics_path: str | Path) -> dict:
    cfg, seed = params["evaluate"], params["seed"]
    ckpt, val, test, p_val, p_test, threshold = score_splits(params, data_dir, model_path)
    y_val, y_test = val.labels.numpy(), test.labels.numpy()
    write_json(threshold_path(model_path), rounded({
        "threshold": threshold, "rule": cfg["threshold"],
        "target_sensitivity": cfg["target_sensitivity"],
        "val": binary_metrics(y_val, p_val, threshold, ("sensitivity", "specificity")),
    }, 6))

    test_metrics = binary_metrics(y_test, p_test, threshold)
    pathogens = np.asarray(test.pathogens)
    for pathogen in ("bacterial", "viral"):
        sel = pathogens == pathogen
        if sel.any():
            test_metrics[f"sensitivity_{pathogen}"] = float((p_test[sel] >= threshold).mean())
    result = {
        **ckpt.get("info", {}),
        "threshold": threshold,
        "test": test_metrics,
        "test_ci95": bootstrap_ci(y_test, p_test, test.patients, threshold, cfg["n_boot"], seed),
        "test_at_half": binary_metrics(y_test, p_test, 0.5, (
            "accuracy", "sensitivity", "specificity", "tn", "fp", "fn", "tp")),
        "val": binary_metrics(y_val, p_val, threshold, ("accuracy", "roc_auc")),
        "images": {"val": len(val), "test": len(test)},
    }
    result = rounded(result)
    write_json(metrics_path, result)

    out_dir = Path(out_dir)
    names = np.asarray(CLASSES)
    with Live(str(out_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        live.log_sklearn_plot("roc", y_test, p_test, name="roc.json")
        live.log_sklearn_plot("precision_recall", y_test, p_test, name="precision_recall.json")
        live.log_sklearn_plot("calibration", y_test, p_test, name="calibration.json",
                              n_bins=10)
        live.log_sklearn_plot("confusion_matrix", names[y_test],
                              names[(p_test >= threshold).astype(int)], name="confusion.json")
    with (out_dir / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "patient", "pathogen", "label", "probability"])
        for i, (patient, pathogen, label, prob) in enumerate(
                zip(test.patients, pathogens, y_test, p_test, strict=True)):
            writer.writerow([i, patient, pathogen, int(label), f"{prob:.6f}"])
    t = result["test"]
    print(f"test @ {threshold:.3f}: accuracy {t['accuracy']:.4f} sensitivity "
          f"{t['sensitivity']:.4f} specificity {t['specificity']:.4f} ROC AUC {t['roc_auc']:.4f}")
    return result
