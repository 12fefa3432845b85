"""reports/summary.md: the four models beside the article, with CIs and paired tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from cxr import CLASSES, MODELS, CxrError
from cxr.metrics import bootstrap_weights, mcnemar_p, weighted_ranking

# The article's test-set figures (624 images: 234 NORMAL, 390 PNEUMONIA).
ARTICLE = {
    "baseline": {"title": "CNN8", "accuracy": 0.76, "tn": 85, "tp": 385},
    "balanced": {"title": "CNN8 + weighted sampler", "accuracy": 0.78, "tn": 104, "tp": 385},
    "cnn11": {"title": "CNN11 + augmentation, BN, dropout", "accuracy": 0.82, "tn": 127,
              "tp": 384},
    "resnet34": {"title": "ResNet34 fine-tuned", "accuracy": 0.87, "tn": 156, "tp": 389},
}


def title(name: str, metrics: dict) -> str:
    """The model as trained: with `resnet34.weights: none` the "fine-tuned" ResNet34 starts
    from random weights, and says so."""
    if name != "resnet34":
        return ARTICLE[name]["title"]
    weights = metrics.get("weights", "none")
    start = {"none": "random init", "imagenet": "ImageNet"}.get(weights, f"weights `{weights}`")
    return f"ResNet34, {start}"


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r["label"]) for r in rows]),
            np.array([float(r["probability"]) for r in rows]), [r["patient"] for r in rows])


def fmt_ci(m: dict, key: str, pct: bool = True) -> str:
    """A test metric with its 95% CI, as a percentage or (`pct=False`) to three decimals."""
    value, ci = m["test"][key], m["test_ci95"][key]
    if pct:
        return f"{value:.1%} ({ci['lo']:.1%}–{ci['hi']:.1%})"
    return f"{value:.3f} ({ci['lo']:.3f}–{ci['hi']:.3f})"


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def fmt_num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def compare(a: str, b: str, eval_dir: Path, thresholds: dict, n_boot: int, seed: int) -> dict:
    """McNemar on correctness at each model's threshold; paired patient bootstrap of ΔAUC."""
    y, pa, patients = read_predictions(eval_dir / a / "predictions.csv")
    y_b, pb, _ = read_predictions(eval_dir / b / "predictions.csv")
    if not np.array_equal(y, y_b):
        raise CxrError(f"{eval_dir}: predictions of {a} and {b} are not on the same test images.")
    correct_a = (pa >= thresholds[a]) == y
    correct_b = (pb >= thresholds[b]) == y
    w = bootstrap_weights(patients, n_boot, seed)
    deltas = weighted_ranking(y, pb, w)[0] - weighted_ranking(y, pa, w)[0]
    lo, hi = np.nanpercentile(deltas, [2.5, 97.5])
    return {"mcnemar_p": mcnemar_p(correct_a, correct_b),
            "accuracy_delta": float(correct_b.mean() - correct_a.mean()),
            "auc_delta": float(roc_auc_score(y, pb) - roc_auc_score(y, pa)),
            "auc_delta_lo": float(lo), "auc_delta_hi": float(hi)}


def load_metrics(metrics_dir: Path) -> dict[str, dict]:
    metrics = {}
    for name in MODELS:
        path = metrics_dir / f"{name}.json"
        if not path.is_file():
            raise CxrError(f"{path}: not found; run `dvc repro` to evaluate every model.")
        metrics[name] = json.loads(path.read_text())
    return metrics


CHANCE_BAND = 0.6  # a lungs-removed ROC AUC below this counts as about chance (0.5)


def beyond_lungs(removed: dict[str, float]) -> list[str]:
    """The models whose test ROC AUC with the lung fields removed is above chance: they read
    more than the lungs. The report and the model card word their verdicts from this."""
    return [n for n, auc in removed.items() if auc >= CHANCE_BAND]


REGION_TITLES = {"clean": "clean", "centre_removed": "centre removed",
                 "centre_only": "centre only", "border_only": "border bands only",
                 "lungs_removed": "lungs removed", "lungs_only": "lungs only"}


def region_table(audits: dict[str, dict]) -> list[str]:
    """ROC AUC (sensitivity / specificity) per region kept, and the Grad-CAM shares in the box
    and in the lungs against their areas, one row per model; regions the audits have."""
    regions = [r for r in REGION_TITLES if r in next(iter(audits.values()))]
    lines = ["| model | " + " | ".join(REGION_TITLES[r] for r in regions)
             + " | Grad-CAM share in box: called NORMAL / PNEUMONIA (box area) | in lungs: "
             "called NORMAL / PNEUMONIA (lung area) |", "|---|" + "---|" * (len(regions) + 2)]
    for name, a in audits.items():
        cells = [f"{a[r]['roc_auc']:.3f} ({a[r]['sensitivity']:.0%} / "
                 f"{a[r]['specificity']:.0%})" if a[r]["roc_auc"] is not None else "–"
                 for r in regions]
        sal = a["saliency"]
        shares = [f"{fmt_pct(sal[f'share_in_{k}_predicted_normal'])} / "
                  f"{fmt_pct(sal[f'share_in_{k}_predicted_pneumonia'])} ({sal[f'{k}_area']:.0%})"
                  for k in ("box", "lungs")]
        lines.append(f"| `{name}` | " + " | ".join(cells + shares) + " |")
    return lines


def audit_section(metrics: dict[str, dict], shortcuts: dict) -> list[str]:
    """'What the models look at': the acquisition baseline, region ablation and Grad-CAM."""
    meta, lap = shortcuts["metadata"], shortcuts["laplacian"]
    lines = ["## What the models look at", "",
             "**Acquisition alone** (stage `shortcuts`, fitted on train): a logistic regression "
             "on file size, pixel count, width, height, aspect ratio, colour mode and bit depth "
             f"reaches ROC AUC {meta['val_roc_auc']:.3f} on validation and "
             f"{meta['test_roc_auc']:.3f} on test; the mean absolute Laplacian of the cached "
             f"pixels (texture: sharpness, noise, JPEG blocks) alone {lap['test_roc_auc']:.3f} "
             "on test.", "",
             "**Region ablation** on test: the pixels outside the kept region are set to the "
             "mean of the kept pixels, so the fill carries nothing of what it hides "
             "(`audit.box` is the central box over the lung fields, `audit.band` the border "
             "strips; the lungs are each image's mask from the `segment` stage). ROC AUC, and "
             "sensitivity / specificity at the validation threshold:", "",
             *region_table({n: metrics[n]["audit"] for n in MODELS})]
    outside = {n: metrics[n]["audit"]["lungs_removed"]["roc_auc"] for n in MODELS}
    border = {n: metrics[n]["audit"]["border_only"]["roc_auc"] for n in MODELS}
    worst = max(outside, key=outside.get)
    above = beyond_lungs(outside)
    if len(above) == len(outside):
        verdict = ("so every model still separates the classes from outside the lung fields: "
                   "part of what they learned is not in the lungs")
    elif not above:
        verdict = "so without the lung fields every model falls to about chance (0.5)"
    else:
        verdict = (f"so {', '.join(f'`{n}`' for n in above)} still read more than the lungs; "
                   "the others fall towards chance")
    lines += ["", f"With the lungs removed the models keep ROC AUC "
              f"{min(outside.values()):.3f}–{max(outside.values()):.3f} (highest: `{worst}`), "
              f"{verdict}; from the border bands alone they reach "
              f"{min(border.values()):.3f}–{max(border.values()):.3f}. The acquisition "
              f"baseline above ({meta['test_roc_auc']:.3f}) is what a model could get without "
              "any anatomy.", ""]
    saliency = {n: metrics[n]["audit"]["saliency"] for n in MODELS}
    below = [f"`{n}` (called {cls.lower()})" for n in MODELS for cls in CLASSES
             if (share := saliency[n][f"share_in_box_predicted_{cls.lower()}"]) is not None
             and share < saliency[n]["box_area"]]
    lines += ["Grad-CAM (captum `LayerGradCam` on the feature maps one stage before the last, "
              "for the predicted class against the other; for models scored with the "
              "test-time flip, the mean of the image's map and the mirror's map flipped back) "
              "shows what each decision drew on; shares are grouped by the class the model "
              "called, at its threshold. A "
              "share of its positive mass inside the box above the box's share of the area "
              "means more weight on the lung fields than on the rest (and likewise for the "
              "lung masks); "
              + ("below it: " + ", ".join(below) + ", whose saliency sits outside the box "
                 "more than the box's area alone would give" if below else
                 "every model and class is above it, which the ablation above qualifies")
              + ". Grids of test images (true and false positives and negatives, those "
              "farthest from the model's threshold first; the box dashed):", ""]
    lines += [f"![Grad-CAM, {name}](figures/gradcam_{name}.png)" for name in MODELS]
    return [*lines, ""]


def external_section(metrics: dict[str, dict], shortcuts: dict) -> list[str]:
    """'Another hospital': every model on the external images at its Kermany threshold."""
    first = metrics[MODELS[0]]["external"]
    synthetic = first["source"] == "synthetic"
    acq = shortcuts.get("external", {})
    lines = ["## Another hospital", "",
             ("**Synthetic**: the default pipeline's second hospital is made by the phantom "
              "generator (other exposure, noise, resolution and marker place; an AP/PA mix that "
              "depends on the class, with tubes and leads on the AP films; same anatomy and "
              "disease signs). It shows the mechanism, not how the models do on patients. "
              if synthetic else "")
             + f"{first['images']} images of {first['patients']} patients "
             f"({first['prevalence']:.0%} PNEUMONIA), scored as evaluate scores Kermany test "
             "and called at each model's Kermany-validation threshold and flip: nothing is "
             "refitted on these images. 95% CIs from a patient bootstrap. ECE: expected "
             "calibration error (10 bins).", "",
             "| model | ROC AUC (95% CI) | Kermany test ROC AUC | sensitivity | specificity "
             "| mean p / prevalence | Brier | ECE | " + " | ".join(
                 f"{k.replace('_', ' ')}: images, ROC AUC" for k in first["strata"]) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(first["strata"])]
    for name in MODELS:
        e, ci = metrics[name]["external"], metrics[name]["external"]["ci95"]
        strata = [f"{s['images']}, {fmt_num(s['roc_auc'])}" for s in e["strata"].values()]
        lines.append(f"| `{name}` | {fmt_num(e['roc_auc'])} ({fmt_num(ci['roc_auc']['lo'])}–"
                     f"{fmt_num(ci['roc_auc']['hi'])}) | {metrics[name]['test']['roc_auc']:.3f} "
                     f"| {fmt_pct(e['sensitivity'])} | {fmt_pct(e['specificity'])} | "
                     f"{e['mean_probability']:.2f} / {e['prevalence']:.2f} | {e['brier']:.3f} | "
                     f"{e['ece']:.3f} | " + " | ".join(strata) + " |")
    if acq:
        lines += ["", "**Acquisition alone at that hospital** (stage `shortcuts`): a logistic "
                  "regression on file size and view (AP/PA), cross-validated in "
                  f"{acq['folds']} patient folds within these images, reaches ROC AUC "
                  f"{fmt_num(acq['metadata_roc_auc_cv'])}; the Laplacian texture statistic "
                  f"{fmt_num(acq['laplacian_roc_auc_best_direction'])} (in its better "
                  "direction). A model near these figures may be reading how the images were "
                  "taken."]
    lines += ["", "**The audit on these images** (the lungs from `segment`'s masks of these "
              "images):", "", *region_table({n: metrics[n]["external"]["audit"]
                                               for n in MODELS}), ""]
    lines += [f"![Grad-CAM at the other hospital, {name}](figures/gradcam_external_{name}.png)"
              for name in MODELS]
    return [*lines, ""]


def summary(metrics: dict[str, dict], eval_dir: Path, n_boot: int, seed: int,
            figures: dict[str, str] | None = None, shortcuts: dict | None = None) -> str:
    n_test = metrics["baseline"]["images"]["test"]
    lines = [
        "# Results on the test split",
        "",
        f"Test images: {n_test} (the article's official test set has 624). Thresholds are fitted "
        "on the validation split; 95% CIs from a patient-level bootstrap. Generated by "
        "`dvc repro` (stage `report`); do not edit.",
        "",
        "| model | accuracy: article | accuracy: ours (95% CI) | correct NORMAL: article | "
        "ours | correct PNEUMONIA: article | ours | sensitivity | specificity | ROC AUC | "
        "threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        m, a = metrics[name], ARTICLE[name]
        lines.append(
            f"| {title(name, m)} (`{name}`) | {a['accuracy']:.0%} | {fmt_ci(m, 'accuracy')} | "
            f"{a['tn']} | {int(m['test']['tn'])} | {a['tp']} | {int(m['test']['tp'])} | "
            f"{fmt_ci(m, 'sensitivity')} | {fmt_ci(m, 'specificity')} | "
            f"{fmt_ci(m, 'roc_auc', pct=False)} | {m['threshold']:.3f} |")
    n_disjoint = metrics["baseline"]["test_disjoint"]["images"]
    lines += ["", "## Patients not seen in training", "",
              f"{n_disjoint} of the {n_test} test images belong to patients whose id appears "
              "nowhere in train or val" + ("; the other ids also appear in train+val, so those "
              "images may show patients the models trained on" if n_disjoint < n_test else "")
              + ". Same thresholds as above. Validation columns are in-sample: the threshold "
              "and the test-time flip were fitted on those same images.", "",
              "| model | test accuracy | disjoint subset: accuracy | sensitivity | specificity "
              "| ROC AUC | test-time flip | validation accuracy (in-sample) | validation ROC AUC |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        m = metrics[name]
        d, v = m["test_disjoint"], m["val_in_sample"]
        lines.append(f"| `{name}` | {m['test']['accuracy']:.1%} | {fmt_pct(d['accuracy'])} | "
                     f"{fmt_pct(d['sensitivity'])} | {fmt_pct(d['specificity'])} | "
                     f"{fmt_num(d['roc_auc'])} | {'yes' if m['tta'] else 'no'} | "
                     f"{v['accuracy']:.1%} | {v['roc_auc']:.3f} |")
    lines += ["", "## Consecutive models, paired on the same test images", "",
              "| comparison | Δ accuracy | McNemar p | Δ ROC AUC (95% CI) | verdict |",
              "|---|---|---|---|---|"]
    thresholds = {name: metrics[name]["threshold"] for name in MODELS}
    for a, b in zip(MODELS, MODELS[1:], strict=False):
        c = compare(a, b, eval_dir, thresholds, n_boot, seed)
        significant = []
        if c["mcnemar_p"] < 0.05:
            significant.append("accuracy")
        if c["auc_delta_lo"] > 0 or c["auc_delta_hi"] < 0:
            significant.append("ROC AUC")
        verdict = ("significant difference in " + " and ".join(significant) if significant
                   else "no significant difference")
        lines.append(f"| `{a}` → `{b}` | {c['accuracy_delta']:+.1%} | {c['mcnemar_p']:.3g} | "
                     f"{c['auc_delta']:+.3f} ({c['auc_delta_lo']:+.3f} to "
                     f"{c['auc_delta_hi']:+.3f}) | {verdict} |")
    lines += ["", "Significance: McNemar's exact test at α = 0.05 on correct/incorrect "
              "calls, and a paired patient bootstrap of the ROC AUC difference whose 95% CI "
              "excludes 0.", ""]
    if shortcuts is not None:
        lines += audit_section(metrics, shortcuts)
        if all("external" in metrics[n] for n in MODELS):
            lines += external_section(metrics, shortcuts)
    if figures:
        lines += ["## Figures", "", "The model card: [model_card.md](model_card.md).", ""]
        for name, caption in figures.items():
            lines += [f"![{caption}](figures/{name})", ""]
    return "\n".join(lines)
