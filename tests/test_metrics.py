import numpy as np
import pytest
from sklearn import metrics as skm

from cxr.metrics import (
    CI_KEYS,
    binary_metrics,
    bootstrap_ci,
    bootstrap_weights,
    choose_threshold,
    expected_calibration_error,
    mcnemar_p,
    weighted_ranking,
)


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.35 + rng.normal(0.35, 0.2, 300), 0, 1)
    return y, p


def test_metrics_match_confusion_counts_and_sklearn(scores):
    y, p = scores
    m = binary_metrics(y, p, 0.5)
    tn, fp, fn, tp = m["tn"], m["fp"], m["fn"], m["tp"]
    assert tn + fp + fn + tp == len(y)
    assert tp + fn == y.sum()
    assert m["accuracy"] == pytest.approx((tp + tn) / len(y))
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["ppv"] == pytest.approx(tp / (tp + fp))
    assert m["npv"] == pytest.approx(tn / (tn + fn))
    yhat = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yhat))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, yhat))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, yhat, pos_label=0))
    assert m["ppv"] == pytest.approx(skm.precision_score(y, yhat))
    assert m["npv"] == pytest.approx(skm.precision_score(y, yhat, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert [tn, fp, fn, tp] == skm.confusion_matrix(y, yhat).ravel().tolist()


def test_threshold_rules(scores):
    y, p = scores
    t = choose_threshold(y, p, "sensitivity", 0.9)
    assert (p[y == 1] >= t).mean() >= 0.9
    higher = np.min(p[p > t])  # the next candidate up misses the target
    assert (p[y == 1] >= higher).mean() < 0.9
    youden = choose_threshold(y, p, "youden")
    j = lambda th: binary_metrics(y, p, th)["balanced_accuracy"]  # noqa: E731
    assert j(youden) >= max(j(th) for th in np.linspace(0.05, 0.95, 19)) - 1e-9
    assert choose_threshold(y, p, "fixed") == 0.5


def test_ece_perfect_and_bad_calibration():
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.where(y == 1, 0.0, 1.0)) == pytest.approx(1.0)


def test_bootstrap_resamples_whole_patients_and_covers_estimate(scores):
    y, p = scores
    patients = np.array([f"p{i // 3}" for i in range(len(y))])  # 3 images per patient
    w = bootstrap_weights(list(patients), 50, 0)
    assert w.shape == (50, 300)
    assert (w.sum(axis=1) == 300).all()  # 100 patients drawn, 3 images each
    for row in w:  # an image is drawn exactly as often as its patient
        assert all(len(set(row[patients == pid])) == 1 for pid in np.unique(patients))
    ci = bootstrap_ci(y, p, list(patients), 0.5, 200, seed=1)
    point = binary_metrics(y, p, 0.5)
    for key, bounds in ci.items():
        assert bounds["lo"] <= point[key] <= bounds["hi"], key
    assert ci == bootstrap_ci(y, p, list(patients), 0.5, 200, seed=1)


def test_bootstrap_equals_metrics_of_each_resampled_test_set(scores):
    """The weighted, all-at-once bootstrap gives what scikit-learn gives on each resample."""
    y, p = scores
    p = np.round(p, 2)  # ties
    patients = [f"p{i // 2}" for i in range(len(y))]
    w = bootstrap_weights(patients, 30, 3)
    idx = [np.repeat(np.arange(len(y)), row.astype(int)) for row in w]
    auc, ap = weighted_ranking(y, p, w)
    assert auc == pytest.approx([skm.roc_auc_score(y[i], p[i]) for i in idx], abs=1e-12)
    assert ap == pytest.approx([skm.average_precision_score(y[i], p[i]) for i in idx], abs=1e-12)
    assert auc == pytest.approx([skm.roc_auc_score(y, p, sample_weight=r) for r in w], abs=1e-12)
    per_resample = np.array([list(binary_metrics(y[i], p[i], 0.5, CI_KEYS).values())
                             for i in idx])
    lo, hi = np.nanpercentile(per_resample, [2.5, 97.5], axis=0)
    ci = bootstrap_ci(y, p, patients, 0.5, 30, 3)
    assert [ci[k]["lo"] for k in CI_KEYS] == pytest.approx(lo, abs=1e-12)
    assert [ci[k]["hi"] for k in CI_KEYS] == pytest.approx(hi, abs=1e-12)


def test_weighted_ranking_is_nan_when_a_resample_has_one_class():
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    auc, ap = weighted_ranking(y, p, np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=float))
    assert np.isnan(auc[0]) and np.isnan(ap[0])
    assert auc[1] == pytest.approx(skm.roc_auc_score(y, p))
    assert ap[1] == pytest.approx(skm.average_precision_score(y, p))


def test_mcnemar():
    a = np.array([True] * 40 + [False] * 10)
    assert mcnemar_p(a, a) == 1.0
    b = np.array([True] * 10 + [False] * 40)
    assert mcnemar_p(a, b) < 1e-6
