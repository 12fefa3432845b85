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


def _ratio(a, b):
    """a / b, and 0 where b is 0; elementwise, so one call serves every bootstrap resample."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _rates(tp, fp, fn, tn) -> dict:
    """Threshold metrics from confusion counts (scalars or one entry per resample)."""
    sens, spec, ppv = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
    return {"accuracy": _ratio(tp + tn, tp + fp + fn + tn), "balanced_accuracy": (sens + spec) / 2,
            "sensitivity": sens, "specificity": spec, "ppv": ppv, "npv": _ratio(tn, tn + fn),
            "f1": _ratio(2 * ppv * sens, ppv + sens)}


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float,
                   keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Metrics of scores `p` against labels `y` (1 = PNEUMONIA) at `threshold` (p >= t).

    Rates come from the confusion counts (shared with the bootstrap); tests check them against
    scikit-learn. Ranking and probability metrics are scikit-learn's.
    """
    yhat, pos = p >= threshold, y == 1
    tp, fn = int(np.sum(yhat & pos)), int(np.sum(~yhat & pos))
    fp, tn = int(np.sum(yhat & ~pos)), int(np.sum(~yhat & ~pos))
    both = 0 < tp + fn < len(y)
    rates = _rates(tp, fp, fn, tn)
    compute = {
        "roc_auc": lambda: skm.roc_auc_score(y, p) if both else float("nan"),
        "pr_auc": lambda: skm.average_precision_score(y, p) if both else float("nan"),
        "brier": lambda: skm.brier_score_loss(y, p),
        "ece": lambda: expected_calibration_error(y, p),
        "tn": lambda: tn, "fp": lambda: fp, "fn": lambda: fn, "tp": lambda: tp,
    }
    return {k: float(rates[k] if k in rates else compute[k]())
            for k in (keys or [*rates, *compute])}


def bootstrap_weights(patients: list[str], n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_images): how often each image is drawn when whole patients are resampled
    with replacement. A resample is a weighting of the test set, so every metric of every
    resample can be computed at once instead of n_boot calls."""
    ids, inverse = np.unique(np.asarray(patients), return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, len(ids), (n_boot, len(ids)))
    counts = np.stack([np.bincount(row, minlength=len(ids)) for row in draws])
    return counts[:, inverse].astype(float)


def weighted_ranking(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision for each row of weights `w`, as scikit-learn's
    roc_auc_score / average_precision_score with sample_weight=row give them (tests check);
    NaN where a row leaves one class only."""
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    groups = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # tied scores, descending
    pos = np.add.reduceat(w[:, order] * (y[order] == 1), groups, axis=1)
    neg = np.add.reduceat(w[:, order] * (y[order] == 0), groups, axis=1)
    tps, fps = pos.cumsum(axis=1), neg.cumsum(axis=1)
    n_pos, n_neg = tps[:, -1], fps[:, -1]
    both = (n_pos > 0) & (n_neg > 0)
    # each negative outranks no positive above it and half of the positives tied with it
    auc = _ratio((neg * (tps - pos / 2)).sum(axis=1), n_pos * n_neg)
    ap = _ratio((pos * _ratio(tps, tps + fps)).sum(axis=1), n_pos)
    return np.where(both, auc, np.nan), np.where(both, ap, np.nan)


def bootstrap_ci(y: np.ndarray, p: np.ndarray, patients: list[str], threshold: float,
                 n_boot: int, seed: int, keys: tuple[str, ...] = CI_KEYS) -> dict:
    """95% percentile intervals of `keys`, resampling patients rather than images."""
    w = bootstrap_weights(patients, n_boot, seed)
    yhat, pos = p >= threshold, y == 1
    samples = _rates(w @ (yhat & pos), w @ (yhat & ~pos), w @ (~yhat & pos), w @ (~yhat & ~pos))
    samples["roc_auc"], samples["pr_auc"] = weighted_ranking(y, p, w)
    lo, hi = np.nanpercentile(np.stack([samples[k] for k in keys], axis=1), [2.5, 97.5], axis=0)
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
