"""Training input from the uint8 cache: splits as tensors, samplers and tensor augmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import RandomSampler, WeightedRandomSampler

from cxr import CxrError
from cxr.prepared import read_manifest
from cxr.resize import resize, resize_masks
from cxr.roi import apply_roi


@dataclass
class Split:
    images: torch.Tensor  # (N, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    patients: list[str]
    pathogens: list[str]
    cache_size: int  # side of the cached images these were resized from
    paths: list[str] = field(default_factory=list)  # relative to the raw dataset root
    lungs: torch.Tensor | None = None  # (N, H, W) bool: the segmenter's masks, moved with `roi`

    def __len__(self) -> int:
        return len(self.labels)


def read_lungs(folder: str | Path, split: str, count: int) -> torch.Tensor:
    """bool (N, S, S): the segmenter's masks of one split (`segment`), at the cache's side."""
    path = Path(folder) / f"{split}.npy"
    if not path.is_file():
        raise CxrError(f"{path}: not found; run `dvc repro segment` first.")
    lungs = torch.from_numpy(np.load(path)).bool()
    if len(lungs) != count:
        raise CxrError(f"{path}: {len(lungs)} masks for {count} {split} images; rerun "
                       "`dvc repro segment`.")
    return lungs


def make_split(images: np.ndarray, rows: list[dict], size: int | None, split: str,
               lungs_dir: str | Path | None = None, roi: str = "full",
               margin: float = 0.0) -> Split:
    """A Split of cached uint8 images and their manifest rows (label, patient, and pathogen
    and path where given): with `lungs_dir`, the split's lung masks are read and `roi`
    applied at the cache's side; then images and masks are resized to `size`, or kept as
    cached where the cache is smaller (never upsampled: `input_side`)."""
    if len(rows) != len(images):
        raise CxrError(f"{split}: the manifest lists {len(rows)} images but the cache holds "
                       f"{len(images)}; rerun `dvc repro`.")
    tensor, lungs = torch.from_numpy(images), None
    if lungs_dir is not None:
        tensor, lungs = apply_roi(tensor, read_lungs(lungs_dir, split, len(tensor)), roi, margin)
    elif roi != "full":
        raise CxrError(f"prepare.roi={roi} needs the segmenter's lung masks (stage segment).")
    cache_size = int(images.shape[-1])
    side = input_side(size, cache_size)
    return Split(resize(tensor, side), torch.tensor([r["label"] for r in rows], dtype=torch.int64),
                 [r["patient"] for r in rows], [r.get("pathogen", "") for r in rows], cache_size,
                 [r.get("path", r.get("file", "")) for r in rows],
                 None if lungs is None else resize_masks(lungs, side))


def load_split(folder: str | Path, split: str, size: int | None = None,
               lungs_dir: str | Path | None = None, roi: str = "full",
               margin: float = 0.0) -> Split:
    """One split of the cache as `make_split` makes it."""
    folder = Path(folder)
    path = folder / f"{split}.npy"
    if not path.is_file():
        raise CxrError(f"{path}: not found; run `dvc repro prepare` first.")
    rows = [r for r in read_manifest(folder) if r["split"] == split]
    return make_split(np.load(path), rows, size, split, lungs_dir, roi, margin)


def input_side(image_size: int | None, cache_size: int) -> int:
    """A model's input side: its `image_size`, or the cache's side where that is smaller. An
    upsampled input adds pixels to compute on and no detail; the side used is logged
    (`input_size` in dvclive/<model>/params.yaml) and stored in the checkpoint."""
    return cache_size if image_size is None else min(image_size, cache_size)


def make_sampler(labels: torch.Tensor, kind: str, generator: torch.Generator):
    """`none`: a shuffle, following the data's class ratio. `weighted`: balanced in expectation."""
    if kind == "none":
        return RandomSampler(range(len(labels)), generator=generator)
    if kind == "weighted":
        counts = torch.bincount(labels, minlength=2).clamp(min=1).double()
        return WeightedRandomSampler((1.0 / counts)[labels], num_samples=len(labels),
                                     replacement=True, generator=generator)
    raise CxrError(f"unknown sampler {kind!r}; use none or weighted.")


def batches(sampler, batch_size: int):
    """Lists of indices of at most `batch_size` drawn from `sampler`."""
    batch: list[int] = []
    for i in sampler:
        batch.append(int(i))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _uniform(n: int, bound: float, generator: torch.Generator) -> torch.Tensor:
    """`n` draws from U(-bound, bound)."""
    return (torch.rand(n, generator=generator) * 2 - 1) * bound


def random_affine(x: torch.Tensor, aug: dict, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random rotation, shear, zoom, shift and horizontal flip of a (N, C, H, W) batch.

    One affine_grid/grid_sample call for the whole batch: torchvision's transforms draw one set
    of parameters per call, so per-sample augmentation there costs a Python loop per image.
    """
    n = x.shape[0]

    def uniform(bound: float) -> torch.Tensor:
        return _uniform(n, bound, generator)

    angle = torch.deg2rad(uniform(aug["rotation"]))
    shear = torch.tan(torch.deg2rad(uniform(aug["shear"])))
    zoom = 1 + uniform(aug["scale"])
    flip = torch.where(torch.rand(n, generator=generator) < aug["hflip"], -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin + shear * cos
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos + shear * sin
    theta[:, :, 2] = torch.stack([uniform(aug["translate"] * 2),
                                  uniform(aug["translate"] * 2)], dim=1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_intensity(x: torch.Tensor, aug: dict, generator: torch.Generator) -> torch.Tensor:
    """Per-sample exposure jitter of a batch in [0, 1]: brightness shift, contrast, gamma.

    X-ray exposure and processing vary between sites and devices (on Kermany, test images are
    exposed differently from train images); geometric augmentation alone does not cover that.
    """
    n = x.shape[0]

    def uniform(bound: float) -> torch.Tensor:
        return _uniform(n, bound, generator).view(n, 1, 1, 1).to(x)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + uniform(aug["contrast"])) + mean + uniform(aug["brightness"])
    return x.clamp(0, 1).pow(torch.exp(uniform(aug["gamma"])))


def erase_borders(x: torch.Tensor, p: float, width: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Per sample and per edge (top, bottom, left, right), with probability `p`, a strip of
    up to `width` of the side filled with the mean of the image: markers, text and collimation
    edges sit there, and a model that cannot count on them must look inward."""
    if p <= 0 or width <= 0:
        return x
    n, side = x.shape[0], x.shape[-1]
    depth = (torch.rand(n, 4, generator=generator) * width * side).round().long()
    depth *= torch.rand(n, 4, generator=generator) < p
    pos = torch.arange(side)
    rows = (pos < depth[:, 0, None]) | (pos >= side - depth[:, 1, None])  # (n, side)
    cols = (pos < depth[:, 2, None]) | (pos >= side - depth[:, 3, None])
    erase = (rows[:, :, None] | cols[:, None, :])[:, None].to(x.device)
    return torch.where(erase, x.mean(dim=(1, 2, 3), keepdim=True), x)


def augment_batch(x: torch.Tensor, aug: dict, generator: torch.Generator) -> torch.Tensor:
    x = random_intensity(random_affine(x, aug, generator), aug, generator)
    return erase_borders(x, aug.get("erase_border", 0.0), aug.get("erase_width", 0.0), generator)


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W) to float (N, 1, H, W) in [0, 1] on `device`."""
    return images.to(device, non_blocking=True).unsqueeze(1).float().div_(255)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)
