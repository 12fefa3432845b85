"""The report's PNG figures and the model card, on a hand-made set of pipeline outputs."""

import json

import numpy as np
import pytest
from PIL import Image

from cxr import MODELS
from cxr.card import model_card
from cxr.figures import FIGURES, write_figures

from helpers import metrics_file, write_predictions


@pytest.fixture
def outputs(tmp_path):
    rng = np.random.default_rng(0)
    metrics = {}
    for k, name in enumerate(MODELS):
        y = rng.integers(0, 2, 60)
        write_predictions(tmp_path / "eval" / name, y,
                          np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1).round(4))
        for split in ("train", "val"):
            for metric in ("loss", "acc"):
                folder = tmp_path / "live" / name / "plots" / "metrics" / split
                folder.mkdir(parents=True, exist_ok=True)
                values = "\n".join(f"{e}\t{0.5 + 0.05 * e * (1 if metric == 'acc' else -1)}"
                                   for e in range(4))
                (folder / f"{metric}.tsv").write_text(f"step\t{metric}\n{values}\n")
        m = metrics_file(0.6 + 0.05 * k, 10 + k, 30 + k, k > 1)
        m["test"].update(fp=5, fn=3, sensitivity_bacterial=0.9, sensitivity_viral=0.8)
        metrics[name] = m
    lr = tmp_path / "live" / "resnet34" / "plots" / "custom"
    lr.mkdir(parents=True)
    (lr / "lr.json").write_text(json.dumps([{"step": i, "lr": 0.001 * (i % 10)}
                                            for i in range(40)]))
    return tmp_path, metrics


def test_figures_are_small_pngs_identical_on_a_rerun(outputs):
    root, metrics = outputs
    first = write_figures(metrics, root / "eval", root / "live", root / "a")
    write_figures(metrics, root / "eval", root / "live", root / "b")
    assert first == FIGURES and len(first) == 5
    for name in first:
        data = (root / "a" / name).read_bytes()
        assert data == (root / "b" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100_000
        assert b"tIME" not in data and b"matplotlib version" not in data
        with Image.open(root / "a" / name) as img:
            assert min(img.size) >= 150


SPLIT = {"train": {"images": 100, "patients": 50, "NORMAL": {"images": 25},
                   "PNEUMONIA": {"images": 75}},
         "val": {"images": 25, "patients": 12, "NORMAL": {"images": 6},
                 "PNEUMONIA": {"images": 19}},
         "test": {"images": 17, "patients": 9, "NORMAL": {"images": 8},
                  "PNEUMONIA": {"images": 9}},
         "shared_patient_ids_trainval_test": 2,
         "duplicate_groups": {"total": 1, "across_train_val": 0, "across_trainval_test": 0}}


@pytest.mark.parametrize("weights, label", [("none", "random init"), ("imagenet", "ImageNet")])
def test_model_card_sections_and_numbers(outputs, default_params, weights, label):
    """The ResNet34's label comes from the weights its checkpoint was trained from."""
    _, metrics = outputs
    metrics = {**metrics, "resnet34": {**metrics["resnet34"], "weights": weights}}
    card = model_card(metrics, SPLIT, default_params)
    for section in ("Model details", "Intended use", "Factors", "Metrics",
                    "Training and evaluation data", "Quantitative analyses",
                    "Ethical considerations", "Caveats and recommendations"):
        assert f"## {section}\n" in card
    assert f"`resnet34`: ResNet34, {label}." in card
    assert "Not a medical device" in card
    assert "Input: each image cropped to its lungs' bounding box (grown by 5% of the side)" in card
    full = {**default_params, "prepare": {**default_params["prepare"], "roi": "full"}}
    assert "Input: the whole image." in model_card(metrics, SPLIT, full)
    assert "train 100 images (25 NORMAL / 75 PNEUMONIA, 50 patients)" in card
    row = next(line for line in card.splitlines() if line.startswith("| `cnn11` |"))
    assert row == ("| `cnn11` | 0.500 | 70.0% (60.0%–80.0%) | 90.0% (80.0%–100.0%) | "
                   "25.0% (0.0%–50.0%) | 0.875 (0.750–0.950) | 90.0% / 80.0% | "
                   "75.0% / 100.0% / – (12 images) |")


@pytest.mark.parametrize("tta, rule", [("auto", "used where it lowered the validation log loss"),
                                       (True, "always used"), (False, "never used")])
@pytest.mark.parametrize("shared", [0, 2])
def test_model_card_text_follows_its_metrics(outputs, default_params, tta, rule, shared):
    """The flip rule, the shared-patient caveat and the audit sentence come from the params,
    the split report and the metrics, not from fixed text."""
    _, metrics = outputs
    for i, name in enumerate(MODELS):
        metrics[name]["audit"] = {"lungs_removed": {"roc_auc": 0.81 + i / 100}}
    params = {**default_params, "evaluate": {**default_params["evaluate"], "tta": tta}}
    card = model_card(metrics, {**SPLIT, "shared_patient_ids_trainval_test": shared}, params)
    prefix = "tried only for models trained with flips and " if tta == "auto" else ""
    assert f"horizontal flip: {prefix}{rule}" in card
    assert "used by `cnn11`, `resnet34`." in card  # metrics_file: tta for the last two
    assert "stays at 0.810–0.840, so the models read more than the lungs" in card
    synthetic = "trained on synthetic phantoms, not X-rays" in card
    assert synthetic == (params["data"]["source"] == "synthetic")
    assert "no shortcut audit" not in card
    if shared:
        assert "The test set shares 2 patient ids with train+val" in card
    else:
        assert "No patient id is shared by the test set and train+val." in card
        assert "shares" not in card.split("## Caveats")[1]


def test_model_card_audit_sentence_and_source(outputs, default_params):
    _, metrics = outputs
    for name, auc in zip(MODELS, (0.45, 0.52, 0.5, 0.48), strict=True):
        metrics[name]["audit"] = {"lungs_removed": {"roc_auc": auc}}
    params = {**default_params, "data": {**default_params["data"], "source": "folder"}}
    card = model_card(metrics, SPLIT, params)
    assert "falls to 0.450–0.520, about chance" in card and "synthetic phantoms" not in card
    metrics["cnn11"]["audit"]["lungs_removed"]["roc_auc"] = 0.7
    assert "is 0.450–0.700: `cnn11` still read more" in model_card(metrics, SPLIT, params)


def test_model_card_states_the_external_figures(outputs, default_params):
    """With external metrics the caveats give each model's ROC AUC there, with its CI, beside
    its Kermany test ROC AUC, and say whether the other hospital was synthetic."""
    _, metrics = outputs
    for i, name in enumerate(MODELS):
        metrics[name]["external"] = {"source": "folder", "images": 538, "roc_auc": 0.5 + i / 10,
                                     "ci95": {"roc_auc": {"lo": 0.4 + i / 10, "hi": 0.6 + i / 10}},
                                     "sensitivity": 0.25}
    card = model_card(metrics, SPLIT, default_params)
    assert "At another hospital (538 images of `external.path`)" in card
    assert "`baseline` 0.500 (0.400–0.600), `balanced` 0.600 (0.500–0.700)" in card
    assert "sensitivity there 25.0%, 25.0%, 25.0%, 25.0%" in card
    metrics["baseline"]["external"]["source"] = "synthetic"
    assert "a synthetic one, made by the phantom generator" in model_card(
        metrics, SPLIT, default_params)
