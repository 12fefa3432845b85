"""What a model looks at, on the test set: region ablation and Grad-CAM (captum).

A model that keeps its ROC AUC with the lung fields blanked out, or that puts its Grad-CAM mass
outside them, is reading something else: burned-in markers, borders, acquisition texture.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import LayerAttribution, LayerGradCam  # noqa: E402
from torch import nn  # noqa: E402

from cxr import CLASSES  # noqa: E402
from cxr.figures import save  # noqa: E402
from cxr.inputs import Split, to_input  # noqa: E402
from cxr.metrics import binary_metrics  # noqa: E402
from cxr.models import cam_layer  # noqa: E402
from cxr.train import predict_proba  # noqa: E402

REGIONS = ("clean", "centre_removed", "centre_only", "border_only")
OUTCOMES = ("TP", "TN", "FP", "FN")


def box_mask(size: int, box: list[float]) -> torch.Tensor:
    """bool (size, size), True inside the box [top, left, bottom, right] (fractions)."""
    top, left, bottom, right = (round(v * size) for v in box)
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def region_masks(size: int, box: list[float], band: float) -> dict[str, torch.Tensor]:
    """Pixels each ablation keeps (True); the rest is filled (`ablate`)."""
    inside = box_mask(size, box)
    inner = box_mask(size, [band, band, 1 - band, 1 - band])
    return {"clean": torch.ones(size, size, dtype=torch.bool), "centre_removed": ~inside,
            "centre_only": inside, "border_only": ~inner}


def ablate(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) with the pixels outside `keep` set to the mean of each image's *kept*
    pixels. The fill must say nothing about what it replaces: the mean of the whole image
    would carry the removed region's brightness back in (on a toy whose label sits only in
    the removed box, that fill value alone separates the classes)."""
    kept = keep.to(torch.float32)  # (H, W) for every image, or (N, H, W) one per image
    mean = ((images.float() * kept).sum(dim=(1, 2), keepdim=True)
            / kept.sum(dim=(-2, -1), keepdim=True).clamp(min=1))
    return torch.where(keep, images, mean.round().to(torch.uint8))


def lung_regions(lungs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image keeps from bool (N, H, W) lung masks: the lungs removed (everything else
    kept), and the lungs only."""
    return {"lungs_removed": ~lungs, "lungs_only": lungs}


def ablation(model: nn.Module, test: Split, p_test: np.ndarray, threshold: float, tta: bool,
             device: torch.device, regions: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """ROC AUC, and sensitivity and specificity at the validation threshold, per region kept,
    scored exactly as evaluate scored the clean images `p_test` (same flip, same batching)."""
    y = test.labels.numpy()
    out = {}
    for name, keep in regions.items():
        p = p_test if name == "clean" else predict_proba(model, ablate(test.images, keep),
                                                         device, tta)
        out[name] = binary_metrics(y, p, threshold, ("roc_auc", "sensitivity", "specificity"))
    return out


def _margins(model: nn.Module):
    """The model with its two logits replaced by their differences (l0 - l1, l1 - l0): the
    evidence for one class against the other, which is what the softmax decides on."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        diff = logits[:, :1] - logits[:, 1:]
        return torch.cat([diff, -diff], dim=1)
    return forward


def gradcam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
            device: torch.device, tta: bool = False, batch_size: int = 64) -> np.ndarray:
    """Raw Grad-CAM maps (N, H, W) for class `targets` against the other class, upsampled to
    the input's size: the gradient-weighted sum of the feature maps, neither rectified nor
    normalised. `tta`: the model's score averages the image and its mirror, so the map
    averages the image's map and the mirror's map flipped back onto the image."""
    model.eval()
    cam = LayerGradCam(_margins(model), cam_layer(model))
    size = tuple(images.shape[-2:])

    def attribute(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        attr = cam.attribute(x, target=target)
        return LayerAttribution.interpolate(attr, size, "bilinear")[:, 0].detach().float()

    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size], device)
        target = targets[start:start + batch_size].to(device)
        maps = attribute(x, target)
        if tta:
            maps = (maps + attribute(x.flip(-1), target).flip(-1)) / 2
        out.append(maps.cpu())
    model.zero_grad(set_to_none=True)
    return torch.cat(out).numpy() if out else np.zeros((0, *size), np.float32)


def share_in(maps: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per map: the fraction of its positive mass inside bool `inside` ((H, W), or (N, H, W)
    one per map); NaN where none is positive."""
    positive = np.clip(maps, 0, None)
    total = positive.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (positive * inside).sum(axis=(1, 2)) / total, np.nan)


def outcomes(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """TP / TN / FP / FN per image at `threshold`."""
    yhat = p >= threshold
    return np.where(y == 1, np.where(yhat, "TP", "FN"), np.where(yhat, "FP", "TN"))


def saliency(model: nn.Module, test: Split, p_test: np.ndarray, threshold: float,
             tta: bool, device: torch.device,
             areas: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    """Grad-CAM of the predicted class for every test image; per area (`box`: (H, W), `lungs`:
    (N, H, W)), the mean share of positive saliency inside it per *predicted* class (each map
    explains the prediction, so a false negative belongs with the NORMAL calls), against the
    area's mean share of the image."""
    predicted = (p_test >= threshold).astype(np.int64)
    maps = gradcam(model, test.images, torch.from_numpy(predicted), device, tta)
    summary = {}
    for area, inside in areas.items():
        shares = share_in(maps, inside)
        summary[f"{area}_area"] = float(inside.mean())
        for label, cls in enumerate(CLASSES):
            chosen = shares[predicted == label]
            summary[f"share_in_{area}_predicted_{cls.lower()}"] = (
                float(np.nanmean(chosen)) if np.isfinite(chosen).any() else float("nan"))
    return summary, maps


def most_confident(p: np.ndarray, threshold: float, kinds: np.ndarray, kind: str,
                   n: int) -> list[int]:
    """Indices of the `n` images of outcome `kind` farthest from the model's threshold (the
    decision the model made, not 0.5), farthest first."""
    order = np.argsort(-np.abs(p - threshold), kind="stable")
    return [int(i) for i in order if kinds[i] == kind][:n]


def gradcam_grid(images: np.ndarray, maps: np.ndarray, p: np.ndarray, threshold: float,
                 kinds: np.ndarray, box: list[float], per_row: int, title: str,
                 path: str | Path) -> None:
    """PNG: one row per outcome (TP, TN, FP, FN), the most confident `per_row` images of each,
    the positive Grad-CAM over the image and the audit box outlined."""
    size = images.shape[-1]
    top, left, bottom, right = (v * size for v in box)
    fig, axes = plt.subplots(len(OUTCOMES), per_row, figsize=(1.6 * per_row, 1.7 * 4),
                             squeeze=False)
    for row, kind in enumerate(OUTCOMES):
        picked = most_confident(p, threshold, kinds, kind, per_row)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(kind)
            if col >= len(picked):
                continue
            i = picked[col]
            heat = np.clip(maps[i], 0, None)
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            if heat.max() > 0:
                ax.imshow(heat / heat.max(), cmap="jet", alpha=0.35, vmin=0, vmax=1)
            ax.add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False,
                                       edgecolor="white", linewidth=0.6, linestyle="--"))
            ax.set_title(f"p={p[i]:.3f}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


def audit_model(model: nn.Module, test: Split, p_test: np.ndarray, threshold: float,
                tta: bool, device: torch.device, cfg: dict, lungs: torch.Tensor,
                title: str, grid: str | Path, box_regions: bool = True) -> dict:
    """The audit of one image set: region ablation (the box and border regions unless
    `box_regions` is False, and the lungs from the bool (N, H, W) masks `lungs` at the input's
    size) and Grad-CAM shares in the box and in the lungs; the grid PNG at `grid`."""
    box = cfg["box"]
    size = test.images.shape[-1]
    boxes = region_masks(size, box, cfg["band"])
    if not box_regions:
        boxes = {"clean": boxes["clean"]}
    regions = ablation(model, test, p_test, threshold, tta, device,
                       {**boxes, **lung_regions(lungs)})
    shares, maps = saliency(model, test, p_test, threshold, tta, device,
                            {"box": box_mask(size, box).numpy(), "lungs": lungs.numpy()})
    kinds = outcomes(test.labels.numpy(), p_test, threshold)
    gradcam_grid(test.images.numpy(), maps, p_test, threshold, kinds, box, cfg["examples"],
                 f"{title} (threshold {threshold:.3f})", grid)
    return {**regions, "saliency": shares}
