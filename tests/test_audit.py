"""The audit finds what a model looks at: toy tasks whose label sits only in the border, or
only in the centre, must show the matching ablation and Grad-CAM pattern; the acquisition
baseline separates classes that differ only in the files' shape."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cxr.audit import (
    REGIONS,
    ablate,
    ablation,
    audit_model,
    box_mask,
    gradcam,
    most_confident,
    outcomes,
    region_masks,
    saliency,
    share_in,
)
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
    result = ablation(model, test, p, 0.5, False, CPU, region_masks(SIZE, BOX, BAND))
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
    share = np.nanmean(share_in(maps, box_mask(SIZE, BOX).numpy()))
    box_area = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])
    if where == "border":
        assert share < box_area - 0.1
    else:
        assert share > box_area + 0.2


@pytest.mark.parametrize("tta", [False, True])
def test_audit_model_writes_metrics_and_a_grid(trained, tmp_path, tta):
    where, model, test = trained
    p = predict_proba(model, test.images, CPU, tta)
    cfg = {"box": BOX, "band": BAND, "examples": 3}
    lungs = box_mask(SIZE, BOX).expand(len(test), SIZE, SIZE)  # "lungs" = the box, per image
    result = audit_model(model, test, p, 0.5, tta, CPU, cfg, lungs, "toy", tmp_path / "g.png")
    assert set(result) == {*REGIONS, "lungs_removed", "lungs_only", "saliency"}
    # lungs equal to the box: the same ablation, the same shares
    assert result["lungs_removed"] == result["centre_removed"]
    assert result["lungs_only"] == result["centre_only"]
    assert result["saliency"]["lungs_area"] == pytest.approx(result["saliency"]["box_area"])
    assert (result["saliency"]["share_in_lungs_predicted_pneumonia"]
            == pytest.approx(result["saliency"]["share_in_box_predicted_pneumonia"]))
    assert result["clean"]["roc_auc"] > 0.95
    # the flip-averaged model still shows where its label is (the square is not symmetric)
    kept = "border_only" if where == "border" else "centre_only"
    removed = "centre_only" if where == "border" else "centre_removed"
    assert result[kept]["roc_auc"] > 0.9 and result[removed]["roc_auc"] < 0.7
    assert result["saliency"]["box_area"] == pytest.approx(0.36, abs=0.01)
    assert 0 <= result["saliency"]["share_in_box_predicted_pneumonia"] <= 1
    png = (tmp_path / "g.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_flip_averaged_gradcam_follows_the_mirror(trained):
    """With the test-time flip the score is f(x) + f(mirror x); its map is the mean of both
    maps, the mirror's flipped back, so mirroring the image mirrors the map."""
    _, model, test = trained
    images, targets = test.images[:8], test.labels[:8]
    plain = gradcam(model, images, targets, CPU)
    maps = gradcam(model, images, targets, CPU, tta=True)
    mirrored = gradcam(model, images.flip(-1), targets, CPU, tta=True)
    np.testing.assert_allclose(mirrored, maps[..., ::-1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps, (plain + gradcam(model, images.flip(-1), targets,
                                                      CPU)[..., ::-1]) / 2, rtol=1e-4,
                               atol=1e-5)
    assert not np.allclose(maps, plain)


def test_saliency_is_grouped_by_the_class_the_model_called(trained):
    """A threshold above every score calls every image NORMAL: each map then explains a
    NORMAL call, and no image is counted as a PNEUMONIA call, whatever its true label."""
    _, model, test = trained
    p = predict_proba(model, test.images, CPU)
    summary, _ = saliency(model, test, p, 1.01, False, CPU, {"box": box_mask(SIZE, BOX).numpy()})
    assert np.isnan(summary["share_in_box_predicted_pneumonia"])
    assert 0 <= summary["share_in_box_predicted_normal"] <= 1


def test_grid_picks_the_images_farthest_from_the_threshold():
    """Under a 0.995 threshold, a false negative at p 0.99 is borderline, one at 0.1 is not."""
    y = np.array([1, 1, 1, 1, 0])
    p = np.array([0.99, 0.1, 0.3, 0.999, 0.2])
    kinds = outcomes(y, p, 0.995)
    assert list(kinds) == ["FN", "FN", "FN", "TP", "TN"]
    assert most_confident(p, 0.995, kinds, "FN", 2) == [1, 2]
    assert most_confident(p, 0.995, kinds, "FP", 2) == []


def test_box_mask_reads_top_left_bottom_right():
    """An asymmetric box (like the default audit.box): rows from top/bottom, columns from
    left/right; swapped axes give the same pixel count, so check the pixels."""
    mask = box_mask(10, [0.1, 0.3, 0.5, 0.9])
    rows, cols = np.nonzero(mask.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 4, 3, 8)
    masks = region_masks(20, [0.1, 0.3, 0.5, 0.9], 0.1)
    assert masks["centre_only"][2, 6] and not masks["centre_only"][6, 2]
    assert masks["border_only"][1, 10] and not masks["border_only"][10, 10]


def test_fill_carries_nothing_of_the_removed_region():
    """Label only inside the box: with the box removed, the fill value must not tell the
    classes apart (the whole image's mean did: ROC AUC about 1.0)."""
    test = planted(400, 5, "centre")
    keep = region_masks(SIZE, BOX, BAND)["centre_removed"]
    out = ablate(test.images, keep)
    fill = out[:, ~keep][:, 0].float().numpy()
    assert (out[:, ~keep] == out[:, ~keep][:, :1]).all()  # one value per image
    assert torch.equal(out[:, keep], test.images[:, keep])
    assert abs(roc_auc_score(test.labels.numpy(), fill) - 0.5) < 0.1
    whole_mean = test.images.float().mean(dim=(1, 2)).numpy()
    assert roc_auc_score(test.labels.numpy(), whole_mean) > 0.9  # what the old fill leaked


def test_region_masks_and_fill():
    masks = region_masks(10, [0.2, 0.3, 0.8, 0.7], 0.1)
    assert masks["clean"].all()
    assert masks["centre_only"].sum() == 6 * 4 and not masks["centre_only"][0].any()
    assert (masks["centre_removed"] == ~masks["centre_only"]).all()
    assert masks["border_only"].sum() == 100 - 64
    images = torch.arange(2 * 100, dtype=torch.uint8).view(2, 10, 10)
    out = ablate(images, masks["centre_only"])
    kept = images[0][masks["centre_only"]].float().mean().item()
    assert (out[0][~masks["centre_only"]] == round(kept)).all()
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


def test_per_image_masks_fill_and_share():
    """Lung masks differ per image: each image is filled from its own kept pixels, and each
    map's share is measured in its own mask."""
    images = torch.stack([torch.full((4, 4), 10, dtype=torch.uint8),
                          torch.full((4, 4), 200, dtype=torch.uint8)])
    images[0, 0, 0], images[1, 3, 3] = 250, 0
    lungs = torch.zeros(2, 4, 4, dtype=torch.bool)
    lungs[0, :2], lungs[1, :, :1] = True, True  # top half / left column
    out = ablate(images, ~lungs)  # lungs removed
    assert (out[0][lungs[0]] == 10).all()  # mean of image 0's kept (lower) half
    assert (out[1][lungs[1]] == round((200 * 11 + 0) / 12)).all()
    assert torch.equal(out[~lungs], images[~lungs])
    maps = np.zeros((2, 4, 4))
    maps[0, 0, :] = 1.0   # all of map 0 inside image 0's lungs
    maps[1, 0, :] = 1.0   # a quarter of map 1 inside image 1's lungs
    np.testing.assert_allclose(share_in(maps, lungs.numpy()), [1.0, 0.25])


def test_external_acquisition_baseline_reads_the_view():
    """The view (AP/PA) tracks the label at the other hospital: the baseline, fitted in
    patient folds within that set, finds it; with the view at random it does not."""
    from cxr.shortcuts import external_acquisition
    rng = np.random.default_rng(1)
    n = 200
    labels = np.arange(n) % 2
    images = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    for tracks, low, high in ((True, 0.9, 1.0), (False, 0.3, 0.7)):
        ap = (labels == 0) if tracks else rng.random(n) < 0.5
        rows = [{"label": int(y), "patient": f"p{i // 2}", "view": "AP" if a else "PA",
                 "file_size": int(rng.integers(9e4, 1e5))}
                for i, (y, a) in enumerate(zip(labels, ap, strict=True))]
        report = external_acquisition(rows, images)
        assert low < report["metadata_roc_auc_cv"] <= high, report
        assert report["view_recorded"] == n and report["folds"] == 5
