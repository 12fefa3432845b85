import json

import numpy as np
import pytest

from cxr import MODELS
from cxr.metrics import mcnemar_p
from cxr.report import audit_section, compare, external_section, load_metrics, summary

from helpers import metrics_file, write_predictions


def test_compare_flags_a_real_improvement_and_not_a_tie(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    weak = np.clip(0.5 + (y - 0.5) * 0.2 + rng.normal(0, 0.25, 400), 0, 1)
    strong = np.clip(0.5 + (y - 0.5) * 0.8 + rng.normal(0, 0.1, 400), 0, 1)
    write_predictions(tmp_path / "a", y, weak)
    write_predictions(tmp_path / "b", y, strong)
    write_predictions(tmp_path / "c", y, weak)
    t = {"a": 0.5, "b": 0.5, "c": 0.5}
    better = compare("a", "b", tmp_path, t, 200, 0)
    assert better["mcnemar_p"] < 0.001 and better["auc_delta_lo"] > 0
    same = compare("a", "c", tmp_path, t, 200, 0)
    assert same["mcnemar_p"] == 1.0 and same["auc_delta"] == 0


def test_mcnemar_matches_the_hand_computed_exact_test():
    # b = 1 pair right only under A, c = 6 right only under B: p = 2 * (1 + 7) / 2**7
    a = np.array([True] * 10 + [True] + [False] * 6)
    b = np.array([True] * 10 + [False] + [True] * 6)
    assert mcnemar_p(a, b) == pytest.approx(0.125)
    assert mcnemar_p(a, a) == 1.0


def test_summary_numbers_and_verdicts_on_a_hand_made_case(tmp_path):
    y = np.array([1, 0] * 8 + [1])
    a_right = np.array([True] * 11 + [False] * 6)  # baseline: 11 of 17
    b_right = np.array([True] * 10 + [False] + [True] * 6)  # balanced: 16 of 17, b=1, c=6

    def probs(right):
        return np.where(right == (y == 1), 0.9, 0.1)

    for name, right in (("baseline", a_right), ("balanced", b_right), ("cnn11", b_right),
                        ("resnet34", b_right)):
        write_predictions(tmp_path / "eval" / name, y, probs(right))
        (tmp_path / "metrics").mkdir(exist_ok=True)
        m = metrics_file(right.mean(), 3, int(right[y == 1].sum()), name != "baseline")
        (tmp_path / "metrics" / f"{name}.json").write_text(json.dumps(m))
    text = summary(load_metrics(tmp_path / "metrics"), tmp_path / "eval", n_boot=200, seed=0)
    lines = text.splitlines()
    base = next(line for line in lines if line.startswith("| CNN8 (`baseline`)"))
    assert base.startswith("| CNN8 (`baseline`) | 76% | 64.7% (54.7%–74.7%) | 85 | 3 | 385 | 6 |")
    assert "| 0.875 (0.750–0.950) | 0.500 |" in base
    first = next(line for line in lines if line.startswith("| `baseline` → `balanced`"))
    assert "| +29.4% | 0.125 |" in first and "in accuracy" not in first
    same = next(line for line in lines if line.startswith("| `balanced` → `cnn11`"))
    assert "| +0.0% | 1 | +0.000 (+0.000 to +0.000) | no significant difference |" in same
    assert "12 of the 17 test images" in text
    disjoint = next(line for line in lines if line.startswith("| `balanced` | 94.1% |"))
    assert disjoint == "| `balanced` | 94.1% | 75.0% | 100.0% | – | – | yes | 96.0% | 0.991 |"


def test_audit_section_reports_ablation_saliency_and_the_acquisition_baseline():
    """Hand-made audit numbers: the table cells, the ranges in the paragraph, and which model
    and class put less Grad-CAM mass in the box than the box's area."""
    metrics = {}
    for i, name in enumerate(MODELS):
        region = {"roc_auc": 0.80 + i / 100, "sensitivity": 0.5, "specificity": 0.75}
        metrics[name] = {"audit": {
            "clean": {"roc_auc": 0.95, "sensitivity": 0.9, "specificity": 0.8},
            "centre_removed": {**region, "roc_auc": 0.9}, "centre_only": region,
            "border_only": {**region, "roc_auc": 0.70 + i / 100},
            "lungs_removed": region, "lungs_only": {**region, "roc_auc": 0.6},
            "saliency": {"box_area": 0.56, "share_in_box_predicted_normal": 0.7,
                         "share_in_box_predicted_pneumonia": 0.4 if name == "resnet34"
                         else None, "lungs_area": 0.33, "share_in_lungs_predicted_normal": 0.6,
                         "share_in_lungs_predicted_pneumonia": 0.5}}}
    shortcuts = {"metadata": {"val_roc_auc": 0.9, "test_roc_auc": 0.834},
                 "laplacian": {"test_roc_auc": 0.827}}
    text = "\n".join(audit_section(metrics, shortcuts))
    assert ("| `cnn11` | 0.950 (90% / 80%) | 0.900 (50% / 75%) | 0.820 (50% / 75%) | "
            "0.720 (50% / 75%) | 0.820 (50% / 75%) | 0.600 (50% / 75%) | 70.0% / – (56%) | "
            "60.0% / 50.0% (33%) |") in text
    assert "keep ROC AUC 0.800–0.830 (highest: `resnet34`)" in text
    assert "border bands alone they reach 0.700–0.730" in text
    assert "0.834 on test" in text and "0.827 on test" in text
    assert "below it: `resnet34` (called pneumonia), whose" in text
    assert "every model still separates the classes from outside the lung fields" in text
    assert text.count("![Grad-CAM, ") == 4


@pytest.mark.parametrize("removed, phrase", [
    ((0.55, 0.58, 0.70, 0.52), "so `cnn11` still read more than the lungs"),
    ((0.55, 0.58, 0.52, 0.51), "every model falls to about chance"),
    ((0.61, 0.75, 0.70, 0.80), "every model still separates the classes"),
])
def test_audit_verdict_follows_the_lungs_removed_auc(removed, phrase):
    metrics = {}
    for name, auc in zip(MODELS, removed, strict=True):
        region = {"roc_auc": auc, "sensitivity": 0.5, "specificity": 0.5}
        metrics[name] = {"audit": {
            **{r: region for r in ("clean", "centre_only", "border_only", "lungs_removed",
                                   "lungs_only")},
            "centre_removed": {**region, "roc_auc": 0.99},  # the verdict reads the lungs
            "saliency": {"box_area": 0.56, "share_in_box_predicted_normal": 0.6,
                         "share_in_box_predicted_pneumonia": 0.6, "lungs_area": 0.3,
                         "share_in_lungs_predicted_normal": 0.6,
                         "share_in_lungs_predicted_pneumonia": 0.6}}}
    shortcuts = {"metadata": {"val_roc_auc": 0.5, "test_roc_auc": 0.5},
                 "laplacian": {"test_roc_auc": 0.5}}
    assert phrase in "\n".join(audit_section(metrics, shortcuts))


def test_external_section_from_hand_made_metrics():
    audit = {r: {"roc_auc": 0.5, "sensitivity": 0.5, "specificity": 0.5}
             for r in ("clean", "lungs_removed", "lungs_only")}
    audit["saliency"] = {"box_area": 0.56, "share_in_box_predicted_normal": 0.6,
                         "share_in_box_predicted_pneumonia": 0.6, "lungs_area": 0.3,
                         "share_in_lungs_predicted_normal": 0.2,
                         "share_in_lungs_predicted_pneumonia": None}
    metrics = {name: {"test": {"roc_auc": 0.95}, "external": {
        "source": "folder", "images": 538, "patients": 301, "prevalence": 0.4888,
        "mean_probability": 0.91, "roc_auc": 0.55 + i / 100, "sensitivity": 0.97,
        "specificity": 0.05, "brier": 0.41, "ece": 0.42,
        "ci95": {"roc_auc": {"lo": 0.5, "hi": 0.6 + i / 100}},
        "strata": {"under_18": {"images": 49, "roc_auc": 0.7},
                   "view_AP": {"images": 330, "roc_auc": None}},
        "audit": audit}} for i, name in enumerate(MODELS)}
    shortcuts = {"external": {"folds": 5, "metadata_roc_auc_cv": 0.66,
                              "laplacian_roc_auc_best_direction": 0.61}}
    text = "\n".join(external_section(metrics, shortcuts))
    assert "538 images of 301 patients (49% PNEUMONIA)" in text
    assert "Synthetic" not in text
    assert ("| `cnn11` | 0.570 (0.500–0.620) | 0.950 | 97.0% | 5.0% | 0.91 / 0.49 | 0.410 | "
            "0.420 | 49, 0.700 | 330, – |") in text
    assert "under 18: images, ROC AUC | view AP: images, ROC AUC |" in text
    assert "5 patient folds within these images, reaches ROC AUC 0.660" in text
    assert "| model | clean | lungs removed | lungs only | Grad-CAM share in box" in text
    assert ("| `cnn11` | 0.500 (50% / 50%) | 0.500 (50% / 50%) | 0.500 (50% / 50%) | "
            "60.0% / 60.0% (56%) | 20.0% / – (30%) |") in text
    assert text.count("![Grad-CAM at the other hospital") == 4
    for m in metrics.values():
        m["external"]["source"] = "synthetic"
    assert "**Synthetic**" in "\n".join(external_section(metrics, shortcuts))
