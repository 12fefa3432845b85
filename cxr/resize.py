"""The one resize of cached uint8 images (and bool masks) to a model's square input side,
shared by training, evaluation, the lung-region crop, the segmenter and `cxr-predict`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """uint8 (N, H, W) to uint8 (N, size, size), bilinear with antialiasing (a no-op at the
    same size). The cache is written once at `prepare.image_size`; each model reads it at its
    own `image_size`, and `cxr.predict` repeats the same two steps."""
    if tuple(images.shape[1:]) == (size, size):
        return images
    out = [F.interpolate(images[i:i + chunk].unsqueeze(1).float(), size=(size, size),
                         mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8).squeeze(1)
           for i in range(0, len(images), chunk)]
    return torch.cat(out) if out else images.new_empty((0, size, size))


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """bool (N, H, W) masks resized as the images are, cut at half."""
    return resize(masks.to(torch.uint8) * 255, size) >= 128
