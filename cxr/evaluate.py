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
from cxr.external import read_external
from cxr.inputs import Split, load_split, make_split
from cxr.metrics import binary_metrics, bootstrap_ci, choose_threshold, rounded
from cxr.models import load_checkpoint, threshold_path
from cxr.prepared import read_manifest
from cxr.roi import roi_of
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


def score_splits(params: dict, data_dir: str | Path, model_path: str | Path,
                 lungs_dir: str | Path) -> Scores:
    """Score val and test (with their lung masks, in the model's `roi`); fit the test-time flip
    and the threshold on val only.

    `evaluate.tta: auto` tries the flip only for models trained with horizontal flips (the
    others never saw mirrored anatomy or mirrored side markers) and keeps it where it lowers
    the validation log loss; `true` and `false` force it.
    """
    cfg = params["evaluate"]
    device = select_device(params["device"])
    model, ckpt = load_checkpoint(model_path)
    model.to(device)
    size = ckpt["image_size"]
    val, test = (load_split(data_dir, split, size, lungs_dir, *roi_of(ckpt))
                 for split in ("val", "test"))
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


def load_external(folder: str | Path, size: int, lungs_dir: str | Path | None = None,
                  ckpt: dict | None = None) -> tuple[Split, list[dict]]:
    """The external set as a Split at a model's input side (its masks and the checkpoint's
    `roi` where given), and its manifest rows."""
    images, rows = read_external(folder)
    return make_split(images, rows, size, "external", lungs_dir, *roi_of(ckpt or {})), rows


STRATUM_KEYS = ("roc_auc", "sensitivity", "specificity")


def _age(value) -> float:
    """Years from a metadata cell; NaN where it is empty or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def strata(rows: list[dict]) -> dict[str, np.ndarray]:
    """Subsets the metadata allows: under 18 (where ages are given) and each view (AP, PA)."""
    out = {}
    ages = [_age(r.get("age", "")) for r in rows]
    if np.isfinite(ages).any():
        out["under_18"] = np.array([a < 18 for a in ages])
    for view in ("AP", "PA"):
        sel = np.array([r.get("view") == view for r in rows])
        if sel.any():
            out[f"view_{view}"] = sel
    return out


def external_metrics(y: np.ndarray, p: np.ndarray, threshold: float, rows: list[dict],
                     n_boot: int, seed: int) -> dict:
    """Another hospital's images at the Kermany-validation threshold (nothing refitted):
    ranking, rates, calibration, patient-bootstrap CIs, and the metadata's strata."""
    patients = [r["patient"] for r in rows]
    out = {"images": len(y), "patients": len(set(patients)), "prevalence": float(y.mean()),
           "mean_probability": float(p.mean()),
           **binary_metrics(y, p, threshold, ("roc_auc", "pr_auc", "accuracy", "sensitivity",
                                              "specificity", "brier", "ece", "tn", "fp", "fn",
                                              "tp")),
           "ci95": bootstrap_ci(y, p, patients, threshold, n_boot, seed,
                                ("roc_auc", "sensitivity", "specificity")),
           "strata": {}}
    for name, sel in strata(rows).items():
        out["strata"][name] = {"images": int(sel.sum()), "pneumonia": int(y[sel].sum()),
                               **binary_metrics(y[sel], p[sel], threshold, STRATUM_KEYS)}
    return out


def evaluate_model(params: dict, data_dir: str | Path, model_path: str | Path,
                   out_dir: str | Path, metrics_path: str | Path, masks_dir: str | Path,
                   external_dir: str | Path) -> dict:
    cfg, seed = params["evaluate"], params["seed"]
    s = score_splits(params, data_dir, model_path, masks_dir)
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
    name, size = Path(model_path).stem, s.ckpt["image_size"]
    started = time.perf_counter()
    audit = audit_model(s.model, s.test, p_test, threshold, s.tta, s.device, params["audit"],
                        s.test.lungs, f"{name}: Grad-CAM of the predicted class (test)",
                        out_dir / "gradcam.png")
    print(f"audit (test): ablation and Grad-CAM in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    external, rows = load_external(external_dir, size, masks_dir, s.ckpt)
    y_ext = external.labels.numpy()
    p_ext = predict_proba(s.model, external.images, s.device, s.tta)
    external_result = {
        "source": params["external"]["source"],
        **external_metrics(y_ext, p_ext, threshold, rows, cfg["n_boot"], seed),
        "audit": audit_model(s.model, external, p_ext, threshold, s.tta, s.device,
                             params["audit"], external.lungs,
                             f"{name}: Grad-CAM of the predicted class (external)",
                             out_dir / "gradcam_external.png", box_regions=False)}
    print(f"external: scored and audited in {time.perf_counter() - started:.1f} s")
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
        "external": external_result,
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
        live.log_sklearn_plot("roc", y_ext, p_ext, name="external_roc.json")
        live.log_sklearn_plot("calibration", y_ext, p_ext, name="external_calibration.json",
                              n_bins=10)
    with (out_dir / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "path", "patient", "pathogen", "label", "probability",
                         "predicted", "disjoint"])
        for i, (path, patient, pathogen, label, prob, dis) in enumerate(zip(
                s.test.paths, s.test.patients, pathogens, y_test, p_test, disjoint, strict=True)):
            writer.writerow([i, path, patient, pathogen, int(label), repr(float(prob)),
                             int(prob >= threshold), int(dis)])  # repr: reads back exactly
    with (out_dir / "external_predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "file", "patient", "label", "probability", "predicted"])
        for i, (row, prob) in enumerate(zip(rows, p_ext, strict=True)):
            writer.writerow([i, row["file"], row["patient"], row["label"], repr(float(prob)),
                             int(prob >= threshold)])
    t, e = result["test"], result["external"]
    print(f"test @ {threshold:.3f} (flip: {s.tta}): accuracy {t['accuracy']:.4f} sensitivity "
          f"{t['sensitivity']:.4f} specificity {t['specificity']:.4f} ROC AUC {t['roc_auc']:.4f}")
    print(f"external ({e['source']}, {e['images']} images): ROC AUC {e['roc_auc']} "
          f"[{e['ci95']['roc_auc']['lo']}, {e['ci95']['roc_auc']['hi']}] sensitivity "
          f"{e['sensitivity']} specificity {e['specificity']}")
    return result
