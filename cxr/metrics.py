"""Thresholds fitted on validation, test metrics with scikit-learn, patient-level bootstrap CIs."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest
from sklearn import metrics as skm

from cxr import CxrError

CI_KEYS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1",
           "roc_auc", "pr_auc")


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str, target: float = 0.95) -> float:
    """Decision threshold on pneumonia probability, from validation labels and scores only.

    `sensitivity`: the highest threshold whose sensitivity reaches `target`; `youden`: the
    threshold maximising sensitivity + specificity - 1; `fixed`: 0.5.
    """
    if rule == "fixed":
        return 0.5
    if len(np.unique(y)) < 2:
        raise CxrError("the validation split holds one class only; cannot fit a threshold. "
                       "Use more images or -S evaluate.threshold=fixed.")
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # roc_curve's first threshold is +inf
    if rule == "youden":
        return float(thresholds[np.argmax(tpr - fpr)])
    if rule == "sensitivity":
        return float(thresholds[np.argmax(tpr >= target)])  # tpr rises as threshold falls
    raise CxrError(f"unknown threshold rule {rule!r}; use sensitivity, youden or fixed.")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean predicted probability| over equal-width bins, weighted by size."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        sel = which == b
        error += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(error)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float,
                   keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Metrics of scores `p` against labels `y` (1 = PNEUMONIA) at `threshold` (p >= t).

    Rates come from the confusion counts (the bootstrap calls this thousands of times, and
    scikit-learn's per-call validation would dominate); tests check them against scikit-learn.
    Ranking and probability metrics are scikit-learn's.
    """
    yhat = p >= threshold
    pos = y == 1
    tp, fn = int(np.sum(yhat & pos)), int(np.sum(~yhat & pos))
    fp, tn = int(np.sum(yhat & ~pos)), int(np.sum(~yhat & ~pos))
    both = 0 < tp + fn < len(y)

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    sens, spec = ratio(tp, tp + fn), ratio(tn, tn + fp)
    ppv = ratio(tp, tp + fp)
    compute = {
        "accuracy": lambda: ratio(tp + tn, len(y)),
        "balanced_accuracy": lambda: (sens + spec) / 2,
        "sensitivity": lambda: sens,
        "specificity": lambda: spec,
        "ppv": lambda: ppv,
        "npv": lambda: ratio(tn, tn + fn),
        "f1": lambda: ratio(2 * ppv * sens, ppv + sens),
        "roc_auc": lambda: skm.roc_auc_score(y, p) if both else float("nan"),
        "pr_auc": lambda: skm.average_precision_score(y, p) if both else float("nan"),
        "brier": lambda: skm.brier_score_loss(y, p),
        "ece": lambda: expected_calibration_error(y, p),
        "tn": lambda: tn, "fp": lambda: fp, "fn": lambda: fn, "tp": lambda: tp,
    }
    return {k: float(compute[k]()) for k in (keys or compute)}


def patient_bootstrap(y: np.ndarray, p: np.ndarray, patients: list[str], statistic,
                      n_boot: int, seed: int) -> np.ndarray:
    """`statistic(idx)` over `n_boot` resamples of whole patients (with replacement)."""
    ids, inverse = np.unique(np.asarray(patients), return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(ids))]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        chosen = rng.integers(0, len(ids), len(ids))
        out.append(statistic(np.concatenate([members[i] for i in chosen])))
    return np.asarray(out, dtype=float)


def bootstrap_ci(y: np.ndarray, p: np.ndarray, patients: list[str], threshold: float,
                 n_boot: int, seed: int, keys: tuple[str, ...] = CI_KEYS) -> dict:
    """95% percentile intervals of `keys`, resampling patients rather than images."""
    samples = patient_bootstrap(
        y, p, patients, lambda i: list(binary_metrics(y[i], p[i], threshold, keys).values()),
        n_boot, seed)
    lo, hi = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return {k: {"lo": float(a), "hi": float(b)} for k, a, b in zip(keys, lo, hi, strict=True)}


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar test: two-sided p-value of the discordant pairs."""
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def rounded(obj, digits: int = 4):
    """Round every float in a nested structure so metrics files diff cleanly."""
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, float):
        return None if np.isnan(obj) else round(obj, digits)
    return obj
