"""The lung U-Net and its masks: the network, its saved dict, and segmentation of cached images
(the `segment` stage's masks and `cxr-predict`'s come from the same `segment_images`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxr import CxrError
from cxr.inputs import to_input
from cxr.models import load_file, save_file
from cxr.resize import resize


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with `depth` poolings and `width` channels at the top,
    doubled per level; one logit per pixel (lung)."""

    def __init__(self, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        pairs = list(zip(chans, chans[1:], strict=False))
        self.down = nn.ModuleList([_block(1, chans[0])] + [_block(a, b) for a, b in pairs])
        self.up = nn.ModuleList([_block(b + a, a) for a, b in pairs][::-1])
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)[:, 0]


@torch.no_grad()
def predict_masks(model: UNet, images: torch.Tensor, out_size: int, device: torch.device,
                  batch_size: int = 128) -> np.ndarray:
    """bool (N, out_size, out_size) lung masks of uint8 (N, H, W) images: logits upsampled
    bilinearly to `out_size` (the cache's side) and cut at 0."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        logits = model(to_input(images[start:start + batch_size], device)).unsqueeze(1)
        logits = F.interpolate(logits, size=(out_size, out_size), mode="bilinear",
                               align_corners=False)
        out.append((logits[:, 0] > 0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, out_size, out_size), bool)


def save_segmenter(path: str | Path, model: UNet, cfg: dict, input_size: int) -> None:
    save_file(path, {"arch": "unet", "config": {"width": cfg["width"], "depth": cfg["depth"]},
                     "image_size": input_size,
                     "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def read_segmenter(path: str | Path) -> dict:
    """`save_segmenter`'s dict (which a lung-region classifier's checkpoint carries)."""
    ckpt = load_file(path, "segmenter not found; run `dvc repro segment`.")
    if not isinstance(ckpt, dict) or ckpt.get("arch") != "unet":
        raise CxrError(f"{path}: not a segmenter checkpoint of this project.")
    return ckpt


def build_segmenter(ckpt: dict) -> tuple[UNet, int]:
    """(U-Net in eval mode, its input side) from `save_segmenter`'s dict."""
    model = UNet(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), int(ckpt["image_size"])


def load_segmenter(path: str | Path) -> tuple[UNet, int]:
    return build_segmenter(read_segmenter(path))


def segment_images(model: UNet, input_size: int, images: torch.Tensor,
                   device: torch.device) -> torch.Tensor:
    """bool (N, S, S) lung masks of uint8 (N, S, S) cached images: resized to the U-Net's
    input side, segmented, and the logits upsampled back to S (the `segment` stage's masks,
    and `cxr-predict`'s)."""
    side = int(images.shape[-1])
    return torch.from_numpy(predict_masks(model, resize(images, input_size), side, device))
