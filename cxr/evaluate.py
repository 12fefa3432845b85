"""Evaluate one trained model: threshold and test-time flip chosen on validation, metrics and
plots on test (all of it, and the images of patients absent from train+val), and the audit of
what it looks at (cxr.audit)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from torch.nn.functional import cross_entropy

from cxr import CLASSES
from cxr.atomic import write_json
from cxr.audit import audit_model
from cxr.inputs import Split, load_split
from cxr.metrics import binary_metrics, bootstrap_ci, choose_threshold, rounded
from cxr.models import load_checkpoint, threshold_path
from cxr.prepared import read_manifest
from cxr.train import predict_logits, predict_proba, proba, select_device


@dataclass
class Scores:
    model: torch.nn.Module
    device: torch.device
    ckpt: dict
    val: Split
    test: Split
    p_val: np.ndarray
    p_test: np.ndarray
    threshold: float  # fitted on val; stored exactly wherever it is written
    tta: bool  # whether scores average in the mirror image (chosen on val)
    val_log_loss: dict[str, float]  # per candidate: "plain", and "flip" where it was tried


def score_splits(params: dict, data_dir: str | Path, model_path: str | Path) -> Scores:
    """Score val and test; fit the test-time flip and the threshold on val only.

    `evaluate.tta: auto` tries the flip only for models trained with horizontal flips (the
    others never saw mirrored anatomy or mirrored side markers) and keeps it where it lowers
    the validation log loss; `true` and `false` force it.
    """
    cfg = params["evaluate"]
    device = select_device(params["device"])
    model, ckpt = load_checkpoint(model_path)
    model.to(device)
    size = ckpt["image_size"]
    val, test = load_split(data_dir, "val", size), load_split(data_dir, "test", size)
    candidates = {"plain": predict_logits(model, val.images, device)}
    mode = cfg["tta"]
    if mode is True or (mode == "auto" and ckpt.get("trained_hflip", 0) > 0):
        mirrored = predict_logits(model, val.images.flip(-1), device)
        candidates["flip"] = (candidates["plain"] + mirrored) / 2  # as predict_logits(tta=True)
    losses = {k: cross_entropy(v, val.labels).item() for k, v in candidates.items()}
    tta = mode is True or (mode == "auto" and "flip" in losses and losses["flip"] < losses["plain"])
    p_val = proba(candidates["flip" if tta else "plain"])
    p_test = predict_proba(model, test.images, device, tta)
    threshold = choose_threshold(val.labels.numpy(), p_val, cfg["threshold"],
                                 cfg["target_sensitivity"])
    return Scores(model, device, ckpt, val, test, p_val, p_test, threshold, tta, losses)


def disjoint_mask(data_dir: str | Path, test: Split) -> np.ndarray:
    """Test images whose patient id appears nowhere in train or val."""
    seen = {r["patient"] for r in read_manifest(data_dir) if r["split"] != "test"}
    return np.array([p not in seen for p in test.patients], dtype=bool)


def evaluate_model(params: dict, data_dir: str | Path, model_path: str | Path,
                   out_dir: str | Path, metrics_path: str | Path) -> dict:
    cfg, seed = params["evaluate"], params["seed"]
    s = score_splits(params, data_dir, model_path)
    threshold, p_val, p_test = s.threshold, s.p_val, s.p_test
    y_val, y_test = s.val.labels.numpy(), s.test.labels.numpy()
    # In-sample: the threshold (and the flip) were fitted on these same validation images.
    val_in_sample = {**binary_metrics(y_val, p_val, threshold, ("accuracy", "sensitivity",
                                                                "specificity", "roc_auc")),
                     "log_loss": s.val_log_loss["flip" if s.tta else "plain"]}
    write_json(threshold_path(model_path), rounded({
        "threshold": threshold, "rule": cfg["threshold"],
        "target_sensitivity": cfg["target_sensitivity"],
        "tta": s.tta, "tta_rule": cfg["tta"], "val_log_loss": s.val_log_loss,
        "val_in_sample": val_in_sample,
    }, 6) | {"threshold": threshold})  # exact: predict compares the same doubles with it

    test_metrics = binary_metrics(y_test, p_test, threshold)
    pathogens = np.asarray(s.test.pathogens)
    for pathogen in ("bacterial", "viral"):
        sel = pathogens == pathogen
        if sel.any():
            test_metrics[f"sensitivity_{pathogen}"] = float((p_test[sel] >= threshold).mean())
    disjoint = disjoint_mask(data_dir, s.test)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    audit = audit_model(s.model, s.test, p_test, threshold, s.tta, s.device, params["audit"],
                        Path(model_path).stem, out_dir)
    print(f"audit: region ablation and Grad-CAM in {time.perf_counter() - started:.1f} s")
    result = {
        **s.ckpt.get("info", {}),
        "threshold": threshold,
        "tta": s.tta,
        "test": test_metrics,
        "test_ci95": bootstrap_ci(y_test, p_test, s.test.patients, threshold, cfg["n_boot"],
                                  seed),
        "test_at_half": binary_metrics(y_test, p_test, 0.5, (
            "accuracy", "sensitivity", "specificity", "tn", "fp", "fn", "tp")),
        "test_disjoint": {
            "images": int(disjoint.sum()),
            **binary_metrics(y_test[disjoint], p_test[disjoint], threshold, (
                "accuracy", "sensitivity", "specificity", "roc_auc", "tn", "fp", "fn", "tp")),
        },
        "val_in_sample": val_in_sample,
        "audit": audit,
        "images": {"val": len(s.val), "test": len(s.test)},
    }
    result = rounded(result) | {"threshold": threshold}  # exact, as in the threshold file
    write_json(metrics_path, result)

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
        writer.writerow(["index", "path", "patient", "pathogen", "label", "probability",
                         "predicted", "disjoint"])
        for i, (path, patient, pathogen, label, prob, dis) in enumerate(zip(
                s.test.paths, s.test.patients, pathogens, y_test, p_test, disjoint, strict=True)):
            writer.writerow([i, path, patient, pathogen, int(label), repr(float(prob)),
                             int(prob >= threshold), int(dis)])  # repr: reads back exactly
    t = result["test"]
    print(f"test @ {threshold:.3f} (flip: {s.tta}): accuracy {t['accuracy']:.4f} sensitivity "
          f"{t['sensitivity']:.4f} specificity {t['specificity']:.4f} ROC AUC {t['roc_auc']:.4f}")
    return result
