"""Lung-region inputs (`prepare.roi`): each cached image cropped to its lung mask's bounding box,
or kept only inside its dilated lung mask, before a model resizes it to its input side.

The masks are the segmenter's (stage `segment`), for training, evaluation and `cxr-predict`
alike, so a model never sees a region chosen by a mask it will not have at prediction time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cxr import ROI_MODES
from cxr.resize import resize, resize_masks

FILL = 0  # the grey outside the lungs for `lungs_mask`: a constant, so it carries nothing


def lung_box(mask: torch.Tensor, margin: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom and right exclusive: the bool (H, W) mask's bounding
    box grown by `margin` x the side on every edge, within the image; the whole image where
    the mask is empty."""
    h, w = mask.shape
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    if len(rows) == 0:
        return 0, 0, h, w
    grow = round(margin * max(h, w))
    return (max(int(rows[0]) - grow, 0), max(int(cols[0]) - grow, 0),
            min(int(rows[-1]) + 1 + grow, h), min(int(cols[-1]) + 1 + grow, w))


def apply_roi(images: torch.Tensor, lungs: torch.Tensor, mode: str,
              margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, S, S) images and their bool (N, S, S) lung masks, both at the cache's side,
    as the model is to see them, and the masks moved with them:

    - `full`: unchanged;
    - `lungs_crop`: the lungs' bounding box plus `margin` of the side, stretched back to S x S
      (markers and text in the corners mostly fall outside it);
    - `lungs_mask`: pixels farther than `margin` of the side from the lungs set to `FILL`.
    """
    if mode == "full":
        return images, lungs
    if mode == "lungs_mask":
        radius = round(margin * images.shape[-1])
        near = lungs[:, None].float()
        if radius > 0:
            near = F.max_pool2d(near, 2 * radius + 1, stride=1, padding=radius)
        return torch.where(near[:, 0] > 0, images, torch.full_like(images, FILL)), lungs
    if mode != "lungs_crop":
        raise ValueError(f"prepare.roi={mode!r}: use one of {', '.join(ROI_MODES)}.")
    out_images, out_lungs = torch.empty_like(images), torch.empty_like(lungs)
    side = images.shape[-1]
    for i, (image, mask) in enumerate(zip(images, lungs, strict=True)):
        top, left, bottom, right = lung_box(mask, margin)
        out_images[i] = resize(image[None, top:bottom, left:right], side)[0]
        out_lungs[i] = resize_masks(mask[None, top:bottom, left:right], side)[0]
    return out_images, out_lungs


def roi_of(ckpt: dict) -> tuple[str, float]:
    """The lung region a model was trained on (`prepare.roi`, `prepare.roi_margin`), as its
    checkpoint records it: evaluation and `cxr-predict` follow the checkpoint, not params.yaml."""
    pre = ckpt.get("preprocess", {})
    return pre.get("roi", "full"), pre.get("roi_margin", 0.0)
