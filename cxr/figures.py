"""PNG figures of the report (matplotlib, Agg): small, offline, byte-identical on a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from cxr import CLASSES, MODELS  # noqa: E402

DPI = 80
STYLE = {"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "lines.linewidth": 1.2}


def save(fig, path: str | Path) -> None:
    """PNG without the version metadata that would differ between matplotlib releases, so a
    rerun writes the same bytes; the figure is closed."""
    try:
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)


def _curves(predictions: dict[str, pd.DataFrame], path: Path) -> None:
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
    for name, df in predictions.items():
        y, p = df["label"].to_numpy(), df["probability"].to_numpy()
        fpr, tpr, _ = roc_curve(y, p)
        roc.plot(fpr, tpr, label=name)
        precision, recall, _ = precision_recall_curve(y, p)
        pr.plot(recall, precision, label=name, drawstyle="steps-post")
    roc.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=0.8)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    pr.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall (test)",
           ylim=(0, 1.02))
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    save(fig, path)


def _calibration(predictions: dict[str, pd.DataFrame], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 3.6), layout="constrained")
    for name, df in predictions.items():
        prob_true, prob_pred = calibration_curve(df["label"], df["probability"], n_bins=10)
        ax.plot(prob_pred, prob_true, marker="o", markersize=3, label=name)
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=0.8)
    ax.set(xlabel="mean predicted probability", ylabel="fraction of pneumonia",
           title="Calibration (test)")
    ax.legend(loc="upper left")
    save(fig, path)


def _confusion(metrics: dict[str, dict], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(6, 5.4), layout="constrained")
    for ax, name in zip(axes.flat, MODELS, strict=True):
        t = metrics[name]["test"]
        cm = np.array([[t["tn"], t["fp"]], [t["fn"], t["tp"]]], dtype=int)
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=cm.sum())
        for (i, j), n in np.ndenumerate(cm):
            ax.text(j, i, str(n), ha="center", va="center",
                    color="white" if n > cm.sum() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASSES, yticklabels=CLASSES,
               xlabel="predicted", ylabel="actual",
               title=f"{name} (threshold {metrics[name]['threshold']:.3f})")
    save(fig, path)


def _history(live_dir: Path, path: Path) -> None:
    fig, axes = plt.subplots(len(MODELS), 2, figsize=(7, 2 * len(MODELS)), layout="constrained",
                             squeeze=False)
    for row, name in zip(axes, MODELS, strict=True):
        for ax, metric in zip(row, ("loss", "acc"), strict=True):
            for split, style in (("train", "-"), ("val", "--")):
                df = pd.read_csv(live_dir / name / "plots" / "metrics" / split / f"{metric}.tsv",
                                 sep="\t")
                ax.plot(df["step"] + 1, df[metric], style, marker=".", label=split)
            ax.set(title=f"{name}: {'loss' if metric == 'loss' else 'accuracy'}",
                   xlabel="epoch")
            ax.legend()
    save(fig, path)


def _learning_rate(live_dir: Path, path: Path) -> None:
    lr = pd.DataFrame(json.loads((live_dir / "resnet34" / "plots" / "custom" / "lr.json")
                                 .read_text()))
    fig, ax = plt.subplots(figsize=(5, 2.6), layout="constrained")
    ax.plot(lr["step"], lr["lr"])
    ax.set(xlabel="step", ylabel="learning rate",
           title="ResNet34: frozen, then unfrozen one-cycle phases")
    save(fig, path)


FIGURES = {
    "roc_pr.png": "ROC and precision-recall curves, four models, test",
    "calibration.png": "Calibration curves, test",
    "confusion.png": "Confusion matrices at each model's validation threshold, test",
    "training.png": "Train and validation loss and accuracy per epoch",
    "learning_rate.png": "ResNet34 learning rate per step",
}


def write_figures(metrics: dict[str, dict], eval_dir: Path, live_dir: Path,
                  out_dir: Path) -> dict[str, str]:
    """Write every figure into `out_dir`; return {file name: caption}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = {name: pd.read_csv(eval_dir / name / "predictions.csv") for name in MODELS}
    with plt.rc_context(STYLE):
        _curves(predictions, out_dir / "roc_pr.png")
        _calibration(predictions, out_dir / "calibration.png")
        _confusion(metrics, out_dir / "confusion.png")
        _history(live_dir, out_dir / "training.png")
        _learning_rate(live_dir, out_dir / "learning_rate.png")
    return FIGURES
