"""Lung segmentation: a small U-Net trained on the train split's lung masks, chosen on val Dice,
scored on test masks, and run on every cached image (external ones included) so the audit and
the lung-region inputs have a mask wherever there is an image."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import OneCycleLR

from cxr import CxrError
from cxr.atomic import atomic_dir
from cxr.external import read_external
from cxr.inputs import batches, input_side, to_input
from cxr.masks import reference_masks
from cxr.prepared import SPLITS, read_manifest, read_preprocess
from cxr.resize import resize
from cxr.train import seed_everything, select_device
from cxr.unet import UNet, predict_masks, save_segmenter, segment_images


def dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image Dice of bool (N, H, W) masks; 1 where both are empty."""
    inter = (pred & truth).sum(axis=(1, 2))
    total = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
    return np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)


def mask_targets(masks: np.ndarray, size: int) -> torch.Tensor:
    """bool (N, S, S) masks as float (N, size, size) lung fractions in [0, 1]."""
    return resize(torch.from_numpy(masks.astype(np.uint8) * 255), size).float() / 255


def train_segmenter(images: torch.Tensor, masks: np.ndarray, val_images: torch.Tensor,
                    val_masks: np.ndarray, cfg: dict, generator: torch.Generator,
                    device: torch.device) -> tuple[UNet, list[float]]:
    """Train on (images at the input side, bool masks at the cache side) with BCE plus soft
    Dice; keep the epoch with the best mean val Dice at the cache side. Returns the model and
    the val Dice per epoch."""
    if len(images) == 0 or len(val_images) == 0:
        raise CxrError("segment: no train or val images with a lung mask; check masks.path "
                       "(<split>/<CLASS>/<stem>.png beside each image).")
    model = UNet(cfg["width"], cfg["depth"]).to(device, memory_format=torch.channels_last)
    target = mask_targets(masks, images.shape[-1]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    steps = cfg["epochs"] * -(-len(images) // cfg["batch_size"])
    schedule = OneCycleLR(optimizer, max_lr=cfg["lr"], total_steps=steps)
    best, best_state, history = -1.0, None, []
    for epoch in range(cfg["epochs"]):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(images), generator=generator).tolist()
        for idx in batches(order, cfg["batch_size"]):
            x, y = to_input(images[idx], device), target[idx]
            if cfg["hflip"]:  # left and right lungs are alike enough to mirror
                flip = torch.rand(len(idx), generator=generator) < 0.5
                x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            logits = model(x)
            p = torch.sigmoid(logits)
            soft_dice = 1 - (2 * (p * y).sum((1, 2)) + 1) / (p.sum((1, 2)) + y.sum((1, 2)) + 1)
            loss = F.binary_cross_entropy_with_logits(logits, y) + soft_dice.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        score = float(dice(predict_masks(model, val_images, val_masks.shape[-1], device),
                           val_masks).mean())
        history.append(score)
        print(f"segment epoch {epoch + 1}/{cfg['epochs']}: val Dice {score:.4f} "
              f"({len(images) / (time.perf_counter() - started):.0f} img/s)", flush=True)
        if score > best:
            best = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), history


def segment_all(params: dict, data_dir: str | Path, masks_root: str | Path,
                external_dir: str | Path, model_path: str | Path, out: str | Path) -> dict:
    """The `segment` stage: train, score Dice on val and test masks, write
    out/{train,val,test,external}.npy (uint8 0/1 at the cache's side); return the metrics."""
    cfg = params["segment"]
    generator = seed_everything(cfg["seed"])
    device = select_device(params["device"])
    data_dir, resize_mode = Path(data_dir), read_preprocess(data_dir)["resize"]
    manifest = read_manifest(data_dir)
    images = {s: torch.from_numpy(np.load(data_dir / f"{s}.npy")) for s in SPLITS}
    images["external"] = torch.from_numpy(read_external(external_dir)[0])
    side = int(images["train"].shape[-1])
    size = input_side(cfg["image_size"], side)
    inputs = {s: resize(images[s], size) for s in ("train", "val")}  # to train on
    ref = {s: reference_masks([r for r in manifest if r["split"] == s], masks_root, side,
                              resize_mode) for s in SPLITS}
    started = time.perf_counter()
    (train_masks, train_has), (val_masks, val_has) = ref["train"], ref["val"]
    model, history = train_segmenter(
        inputs["train"][torch.from_numpy(train_has)], train_masks[train_has],
        inputs["val"][torch.from_numpy(val_has)], val_masks[val_has], cfg, generator, device)
    seconds = time.perf_counter() - started
    report: dict = {"input_size": size, "cache_size": side,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "val_dice_per_epoch": [round(d, 4) for d in history]}
    with atomic_dir(out) as tmp:
        for split, x in images.items():
            pred = segment_images(model, size, x, device).numpy()
            np.save(tmp / f"{split}.npy", pred.astype(np.uint8))
            report[split] = {"images": len(pred), "lung_area": round(float(pred.mean()), 4)}
            if split in ref:
                masks, has = ref[split]
                scores = dice(pred[has], masks[has])
                report[split] |= {"with_mask": int(has.sum()),
                                  **({"dice_mean": round(float(scores.mean()), 4),
                                      "dice_median": round(float(np.median(scores)), 4),
                                      "dice_p05": round(float(np.percentile(scores, 5)), 4)}
                                     if has.any() else {})}
    save_segmenter(model_path, model, cfg, size)
    print(f"segment: trained in {seconds:.0f} s; Dice val {report['val'].get('dice_mean')} "
          f"test {report['test'].get('dice_mean')}")
    return report
