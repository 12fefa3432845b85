"""Another hospital's images: the folder and its metadata, the cache, the metrics at the
Kermany threshold (checked by hand), the synthetic second hospital, and a toy domain shift."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from cxr import CxrError
from cxr.evaluate import external_metrics, load_external, strata
from cxr.external import materialise_external, read_external, scan_external, write_external_cache
from cxr.inputs import Split
from cxr.models import build_model
from cxr.synthetic import generate_external
from cxr.train import Phase, fit, predict_proba

from helpers import NoLive, jpeg_bytes

CPU = torch.device("cpu")
SYNTHETIC = {"source": "synthetic", "path": "", "synthetic": {"n": 40, "image_size": 32,
                                                                "seed": 3}}


def nih_like(root, with_metadata=True):
    """Two images per class, one patient with two images, sizes that differ by class."""
    rows = []
    for cls, sizes in (("NORMAL", (60, 64)), ("PNEUMONIA", (48, 50))):
        (root / cls).mkdir(parents=True)
        for k, side in enumerate(sizes):
            name = f"{cls}/{cls[0]}{k}.png"
            Image.fromarray(np.full((side, side * 2), 40 * k + 20, np.uint8)).save(root / name)
            rows.append([name, cls, "7" if cls == "NORMAL" else f"{k}", 15 + 10 * k, "F",
                         "ap" if cls == "NORMAL" else "PA"])
    if with_metadata:
        with (root / "metadata.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "label", "patient_id", "age", "sex", "view"])
            w.writerows(rows)
    return root


def test_folder_is_copied_and_cached_at_the_kermany_geometry(tmp_path):
    src = nih_like(tmp_path / "nih")
    (src / "NORMAL" / "broken.png").write_bytes(b"not a png")
    before = sorted(p.name for p in src.rglob("*"))
    report = materialise_external({"source": "folder", "path": str(src)}, 1.0, tmp_path / "raw")
    assert report["NORMAL"] == 2 and report["PNEUMONIA"] == 2
    assert report["excluded"] == [{"path": "NORMAL/broken.png",
                                   "reason": "not an image (unidentified format)"}]
    assert sorted(p.name for p in src.rglob("*")) == before  # the source is only read
    rows = scan_external(tmp_path / "raw")
    assert [r["patient"] for r in rows] == ["7", "7", "0", "1"]
    assert [r["view"] for r in rows] == ["AP", "AP", "PA", "PA"]  # upper-cased
    assert rows[0]["width"] == 120 and rows[0]["height"] == 60
    n = write_external_cache(tmp_path / "raw", tmp_path / "cache",
                             {"image_size": 16, "resize": "pad", "lowpass": 0.0}, workers=1)
    images, cached = read_external(tmp_path / "cache")
    assert n == 4 and images.shape == (4, 16, 16) and images.dtype == np.uint8
    assert [r["label"] for r in cached] == [0, 0, 1, 1]


def test_without_metadata_each_file_is_its_own_patient(tmp_path):
    root = nih_like(tmp_path / "nih", with_metadata=False)
    rows = scan_external(root)
    assert len({r["patient"] for r in rows}) == 4
    assert strata(rows) == {}  # no ages, no views: no strata


def test_bad_folders_are_refused_with_the_param_named(tmp_path):
    with pytest.raises(CxrError, match="external.path=.*not a folder"):
        materialise_external({"source": "folder", "path": str(tmp_path / "none")}, 1.0,
                             tmp_path / "raw")
    (tmp_path / "half" / "NORMAL").mkdir(parents=True)
    (tmp_path / "half" / "NORMAL" / "a.jpeg").write_bytes(jpeg_bytes())
    with pytest.raises(CxrError, match="no images in PNEUMONIA"):
        materialise_external({"source": "folder", "path": str(tmp_path / "half")}, 1.0,
                             tmp_path / "raw")
    assert not (tmp_path / "raw").exists()  # nothing half-written


def test_external_metrics_by_hand():
    """Six images, threshold 0.5. Scores: NORMAL 0.1 0.6 0.3, PNEUMONIA 0.7 0.4 0.9.
    ROC AUC: of the 9 (pneumonia, normal) pairs, 8 are ordered right (not 0.4 < 0.6) -> 8/9.
    At 0.5: TP 2 (0.7, 0.9), FN 1, FP 1 (0.6), TN 2 -> sensitivity 2/3, specificity 2/3.
    Under 18: images 0, 3, 4 (NORMAL 0.1; PNEUMONIA 0.7, 0.4): AUC 1, sensitivity 1/2."""
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.3, 0.7, 0.4, 0.9])
    rows = [{"patient": f"p{i}", "age": age, "view": view} for i, (age, view) in enumerate(
        [(5, "AP"), (40, "PA"), (70, "PA"), ("10", "AP"), (12, "PA"), ("unknown", "AP")])]
    m = external_metrics(y, p, 0.5, rows, n_boot=200, seed=0)
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 2)
    assert m["images"] == 6 and m["patients"] == 6 and m["prevalence"] == 0.5
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["ci95"]["roc_auc"]["lo"] <= 8 / 9 <= m["ci95"]["roc_auc"]["hi"]
    u18 = m["strata"]["under_18"]
    assert u18["images"] == 3 and u18["pneumonia"] == 2
    assert u18["roc_auc"] == 1.0 and u18["sensitivity"] == 0.5 and u18["specificity"] == 1.0
    ap, pa = m["strata"]["view_AP"], m["strata"]["view_PA"]
    assert ap["images"] == 3 and pa["images"] == 3
    assert pa["roc_auc"] == 0.5  # PA: NORMAL 0.6, 0.3; PNEUMONIA 0.4 -> one of two pairs


def test_synthetic_second_hospital(tmp_path):
    n = generate_external(tmp_path / "a", 60, 32, seed=3)
    assert n == 60
    generate_external(tmp_path / "b", 60, 32, seed=3)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
               for f in files)  # deterministic
    rows = scan_external(tmp_path / "a")
    assert len(rows) == 60 and {r["view"] for r in rows} == {"AP", "PA"}
    assert len({r["patient"] for r in rows}) < 60  # several images per patient
    ap = {label: np.mean([r["view"] == "AP" for r in rows if r["label"] == label])
          for label in (0, 1)}
    assert ap[0] > ap[1]  # the view depends on the class, as at NIH
    assert (rows[0]["width"], rows[0]["height"]) == (32, 32)


def shifted(n: int, seed: int, marker_tracks_label: bool) -> Split:
    """Noise images with a faint central blob for PNEUMONIA and a bright corner marker that
    marks PNEUMONIA (or appears at random)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    x = rng.normal(120, 20, (n, 32, 32))
    x[y == 1, 12:20, 12:20] += 12
    marker = (y == 1) if marker_tracks_label else rng.random(n) < 0.5
    x[marker, 1:5, 1:5] = 255
    images = torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8))
    return Split(images, torch.from_numpy(y), [f"p{i}" for i in range(n)], ["n"] * n, 32)


def test_toy_domain_shift_loses_what_the_marker_gave():
    """Trained where the marker tracks the label, the model leans on it; at a hospital where
    the marker is random its ROC AUC falls well below its home test's."""
    torch.manual_seed(0)
    model = build_model("cnn8", width=8)
    fit(model, shifted(320, 1, True), shifted(64, 2, True), [Phase("train", 4, 3e-3)],
        batch_size=32, weight_decay=0.0, label_smoothing=0.0, sampler="none", augment=None,
        generator=torch.Generator().manual_seed(0), device=CPU, live=NoLive())
    auc = {}
    for name, tracks in (("home", True), ("away", False)):
        test = shifted(200, 3, tracks)
        auc[name] = roc_auc_score(test.labels.numpy(), predict_proba(model, test.images, CPU))
    assert auc["home"] > 0.95
    assert auc["away"] < auc["home"] - 0.15, auc


def test_load_external_resizes_to_the_models_input(tmp_path):
    materialise_external(SYNTHETIC, 1.0, tmp_path / "raw")
    write_external_cache(tmp_path / "raw", tmp_path / "cache",
                         {"image_size": 24, "resize": "stretch", "lowpass": 0.0}, workers=1)
    split, rows = load_external(tmp_path / "cache", 16)
    assert split.images.shape == (40, 16, 16) and split.cache_size == 24
    assert split.paths == [r["file"] for r in rows]
    big, _ = load_external(tmp_path / "cache", 64)  # never upsampled
    assert big.images.shape[-1] == 24
