"""evaluate: what is fitted on validation stays fitted on validation, and the flip is chosen
there, recorded, and applied the same way to test."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from cxr.evaluate import evaluate_model as run_evaluate
from cxr.external import materialise_external, write_external_cache
from cxr.inputs import load_split
from cxr.masks import reference_masks
from cxr.metrics import binary_metrics, choose_threshold
from cxr.models import build_model, save_checkpoint
from cxr.prepared import read_manifest, read_preprocess, write_cache
from cxr.split import assign_val, scan
from cxr.synthetic import generate
from cxr.train import predict_proba

from conftest import ROOT

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The cache, and beside it what evaluate also reads: lung masks (the generator's, for
    val and test; a box for the external images) and a small synthetic external set."""
    root = tmp_path_factory.mktemp("evaluate")
    generate(root / "raw", n_train=120, n_test=40, image_size=48, seed=0, masks=root / "masks")
    records, _ = scan(root / "raw")
    assign_val(records, 0.3, seed=0)
    train_ids = [r.patient for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    for r, pid in zip(test[:3], train_ids[:3], strict=True):  # 3 test images of seen patients
        r.patient = pid
    (root / "cache").mkdir()
    write_cache(records, root / "raw", root / "cache", 48, 1)
    materialise_external({"source": "synthetic", "synthetic": {"n": 30, "image_size": 32,
                                                                "seed": 1}}, 4.0, root / "ext")
    write_external_cache(root / "ext", root / "external", read_preprocess(root / "cache"), 1)
    (root / "lungs").mkdir()
    for split in ("val", "test"):
        rows = [r for r in read_manifest(root / "cache") if r["split"] == split]
        np.save(root / f"lungs/{split}.npy", reference_masks(rows, root / "masks", 48)[0]
                .astype(np.uint8))
    box = np.zeros((30, 48, 48), np.uint8)
    box[:, 8:40, 6:42] = 1
    np.save(root / "lungs/external.npy", box)
    return root / "cache"


def evaluate_model(params, cache, model, out, metrics):
    return run_evaluate(params, cache, model, out, metrics, cache.parent / "lungs",
                        cache.parent / "external")


def params(tta) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["device"] = "cpu"
    p["evaluate"].update(tta=tta, n_boot=20)
    return p


def checkpoint(path, hflip: float):
    torch.manual_seed(3)
    model = build_model("cnn8", width=4).eval()
    save_checkpoint(path, model, "cnn8", {"width": 4}, 32, 48, trained_hflip=hflip)
    return model


def test_threshold_is_fitted_on_validation_not_test(prepared, tmp_path):
    model = checkpoint(tmp_path / "m.pt", hflip=0.0)
    m = evaluate_model(params("auto"), prepared, tmp_path / "m.pt", tmp_path / "eval",
                       tmp_path / "m.json")
    val, test = load_split(prepared, "val", 32), load_split(prepared, "test", 32)
    p_val = predict_proba(model, val.images, CPU)
    p_test = predict_proba(model, test.images, CPU)
    on_val = choose_threshold(val.labels.numpy(), p_val, "sensitivity", 0.95)
    on_test = choose_threshold(test.labels.numpy(), p_test, "sensitivity", 0.95)
    assert on_val != on_test
    fitted = json.loads((tmp_path / "m.threshold.json").read_text())
    # one value everywhere: the metrics, the threshold file predict reads, and a val score
    assert m["threshold"] == fitted["threshold"] == on_val and fitted["tta"] is False
    assert on_val in p_val
    expected = binary_metrics(test.labels.numpy(), p_test, on_val)
    assert m["test"]["accuracy"] == round(expected["accuracy"], 4)
    assert m["test"]["tp"] == expected["tp"]


def test_flip_is_tried_only_for_models_trained_with_flips_and_kept_where_it_wins(prepared,
                                                                                 tmp_path):
    checkpoint(tmp_path / "plain.pt", hflip=0.0)
    m = evaluate_model(params("auto"), prepared, tmp_path / "plain.pt", tmp_path / "e1",
                       tmp_path / "plain.json")
    fitted = json.loads((tmp_path / "plain.threshold.json").read_text())
    assert m["tta"] is False and set(fitted["val_log_loss"]) == {"plain"}

    checkpoint(tmp_path / "flip.pt", hflip=0.5)
    m = evaluate_model(params("auto"), prepared, tmp_path / "flip.pt", tmp_path / "e2",
                       tmp_path / "flip.json")
    fitted = json.loads((tmp_path / "flip.threshold.json").read_text())
    losses = fitted["val_log_loss"]
    assert m["tta"] == fitted["tta"] == (losses["flip"] < losses["plain"])
    assert m["val_in_sample"]["log_loss"] == round(losses["flip" if m["tta"] else "plain"], 4)

    forced = evaluate_model(params(True), prepared, tmp_path / "plain.pt", tmp_path / "e3",
                            tmp_path / "forced.json")
    assert forced["tta"] is True


def test_patient_disjoint_subset(prepared, tmp_path):
    checkpoint(tmp_path / "m.pt", hflip=0.0)
    m = evaluate_model(params(False), prepared, tmp_path / "m.pt", tmp_path / "eval",
                       tmp_path / "m.json")
    with (tmp_path / "eval" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    disjoint = np.array([r["disjoint"] == "1" for r in rows])
    assert m["test_disjoint"]["images"] == disjoint.sum() == len(rows) - 3
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    expected = binary_metrics(y[disjoint], p[disjoint], m["threshold"], ("accuracy",))
    assert m["test_disjoint"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)


def test_external_metrics_are_those_of_its_predictions(prepared, tmp_path):
    """metrics["external"] is computed from exactly the scores in external_predictions.csv,
    at the Kermany-validation threshold; the lungs audit runs on the external masks."""
    checkpoint(tmp_path / "m.pt", hflip=0.5)
    m = evaluate_model(params("auto"), prepared, tmp_path / "m.pt", tmp_path / "eval",
                       tmp_path / "m.json")
    with (tmp_path / "eval" / "external_predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    e = m["external"]
    assert e["images"] == len(rows) == 30 and e["source"] == "synthetic"
    expected = binary_metrics(y, p, m["threshold"], ("roc_auc", "sensitivity", "specificity"))
    for key, value in expected.items():
        assert e[key] == pytest.approx(value, abs=1e-4)
    assert all(int(r["predicted"]) == (float(r["probability"]) >= m["threshold"]) for r in rows)
    assert e["audit"]["clean"]["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-4)
    # the 48 px box at the 32 px input: its area, to the resize's rounding at the edges
    assert e["audit"]["saliency"]["lungs_area"] == pytest.approx(32 * 36 / 48**2, abs=0.03)
    assert set(m["audit"]) >= {"lungs_removed", "lungs_only", "centre_removed"}
    assert (tmp_path / "eval" / "gradcam_external.png").read_bytes()[:4] == b"\x89PNG"
