"""The audit finds what a model looks at: toy tasks whose label sits only in the border, or
only in the centre, must show the matching ablation and Grad-CAM pattern; the acquisition
baseline separates classes that differ only in the files' shape."""

import numpy as np
import pytest
import torch

from cxr.audit import REGIONS, ablate, ablation, audit_model, gradcam, region_masks, share_in_box
from cxr.inputs import Split
from cxr.models import build_model
from cxr.shortcuts import shortcut_report
from cxr.train import Phase, fit, predict_proba

from helpers import NoLive

SIZE = 64
BOX = [0.2, 0.2, 0.8, 0.8]
BAND = 0.15
CPU = torch.device("cpu")


def planted(n: int, seed: int, where: str) -> Split:
    """Noise images; PNEUMONIA (half) carry a bright 6 px square in a border strip or inside
    the central box, nowhere else."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int64)
    # mean 128: 0 after the CNN's normalisation, like its zero padding
    images = rng.normal(128, 25, (n, SIZE, SIZE))
    for i in np.flatnonzero(labels):
        if where == "border":
            a, b = rng.integers(1, 3), rng.integers(2, SIZE - 8)  # within the 9 px band
            y, x = [(a, b), (SIZE - 7 - a, b), (b, a), (b, SIZE - 7 - a)][rng.integers(4)]
        else:
            y, x = rng.integers(int(0.3 * SIZE), int(0.7 * SIZE) - 6, 2)
        images[i, y:y + 6, x:x + 6] += 120
    images = torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8))
    return Split(images, torch.from_numpy(labels), [f"p{i}" for i in range(n)],
                 ["normal"] * n, SIZE)


@pytest.fixture(scope="module", params=["border", "centre"])
def trained(request):
    torch.manual_seed(0)
    where = request.param
    train, val, test = planted(384, 1, where), planted(64, 2, where), planted(200, 3, where)
    model = build_model("cnn8", width=8)
    fit(model, train, val, [Phase("train", 5, 3e-3)], batch_size=32, weight_decay=0.0,
        label_smoothing=0.0, sampler="none", augment=None,
        generator=torch.Generator().manual_seed(0), device=CPU, live=NoLive())
    return where, model.eval(), test


def test_ablation_shows_where_the_label_is(trained):
    where, model, test = trained
    p = predict_proba(model, test.images, CPU)
    result = ablation(model, test, p, 0.5, False, CPU, BOX, BAND)
    assert list(result) == list(REGIONS)
    assert result["clean"]["roc_auc"] > 0.95
    if where == "border":
        assert result["border_only"]["roc_auc"] > 0.9
        assert result["centre_removed"]["roc_auc"] > 0.9
        assert result["centre_only"]["roc_auc"] < 0.7
    else:
        assert result["centre_only"]["roc_auc"] > 0.9
        assert result["centre_removed"]["roc_auc"] < 0.7
        assert result["border_only"]["roc_auc"] < 0.7


def test_gradcam_points_at_the_planted_region(trained):
    where, model, test = trained
    pos = test.labels == 1
    maps = gradcam(model, test.images[pos], torch.ones(int(pos.sum()), dtype=torch.long), CPU)
    assert maps.shape == (int(pos.sum()), SIZE, SIZE)
    assert np.isfinite(maps).all()
    share = np.nanmean(share_in_box(maps, BOX))
    box_area = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])
    if where == "border":
        assert share < box_area - 0.1
    else:
        assert share > box_area + 0.2


def test_audit_model_writes_metrics_and_a_grid(trained, tmp_path):
    _, model, test = trained
    p = predict_proba(model, test.images, CPU)
    cfg = {"box": BOX, "band": BAND, "examples": 3}
    result = audit_model(model, test, p, 0.5, False, CPU, cfg, "toy", tmp_path)
    assert set(result) == {*REGIONS, "saliency"}
    assert result["saliency"]["box_area"] == pytest.approx(0.36, abs=0.01)
    assert 0 <= result["saliency"]["share_in_box_pneumonia"] <= 1
    png = (tmp_path / "gradcam.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_region_masks_and_fill():
    masks = region_masks(10, [0.2, 0.3, 0.8, 0.7], 0.1)
    assert masks["clean"].all()
    assert masks["centre_only"].sum() == 6 * 4 and not masks["centre_only"][0].any()
    assert (masks["centre_removed"] == ~masks["centre_only"]).all()
    assert masks["border_only"].sum() == 100 - 64
    images = torch.arange(2 * 100, dtype=torch.uint8).view(2, 10, 10)
    out = ablate(images, masks["centre_only"])
    assert (out[0][~masks["centre_only"]] == round(images[0].float().mean().item())).all()
    assert torch.equal(out[1][masks["centre_only"]], images[1][masks["centre_only"]])


def test_metadata_baseline_reads_the_aspect_ratio():
    """Classes differing only in width/height: metadata separates them, pixels do not."""
    rng = np.random.default_rng(0)
    rows, images = {}, {}
    for split, n in (("train", 200), ("val", 60), ("test", 100)):
        labels = np.arange(n) % 2
        aspect = np.where(labels == 1, 1.5, 1.2) + rng.normal(0, 0.05, n)
        rows[split] = [{"label": int(y), "width": int(1000 * a), "height": 1000,
                        "aspect": float(a), "file_size": int(rng.integers(10**5, 10**6)),
                        "color_mode": "L", "bit_depth": 8}
                       for y, a in zip(labels, aspect, strict=True)]
        images[split] = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    report = shortcut_report(rows, images)
    assert report["metadata"]["test_roc_auc"] > 0.95
    assert report["metadata_features_test"]["aspect"] > 0.95
    assert 0.3 < report["laplacian"]["test_roc_auc"] < 0.7
    assert 0.3 < report["metadata_features_test"]["log_file_size"] < 0.7
