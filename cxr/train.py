"""The one training loop every model uses, and batched inference."""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

from cxr import CxrError
from cxr.inputs import Split, augment_batch, batches, make_sampler, steps_per_epoch, to_input


@dataclass
class Phase:
    """Epochs under one one-cycle schedule; `trainable` None trains every parameter."""

    name: str
    epochs: int
    max_lr: float
    trainable: list[nn.Parameter] | None = None


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise CxrError("device=cuda but no CUDA device is available; use -S device=auto.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CxrError("device=mps but MPS is not available; use -S device=auto.")
    device = torch.device(name)
    if device.type == "cuda":
        # cudnn.benchmark stays off: its per-shape search cost more than it saved in these short
        # runs (H100, real data: train, evaluate and report stages 158 s with it, 127 s without).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware: CUDA GPUs that support it, CPUs with
    AVX512-BF16 or AMX. Elsewhere autocast emulates it, slower than fp32 (benchmarks/README.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The `precision` param made concrete: `auto` is bf16 where native, else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast on CUDA and CPU; MPS and `bf16=False` run in full precision."""
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device,
                   tta: bool = False, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, 2) on the CPU for uint8 (N, H, W) images; `tta` averages in the mirror image.

    bfloat16 on CUDA only: on a CPU, inference is cheap and full precision keeps scores exact.
    """
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size], device)
        with autocast(device, device.type == "cuda"):
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(-1)).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.empty(0, 2)


def proba(logits: torch.Tensor) -> np.ndarray:
    """Pneumonia probability from (N, 2) logits, in float64: in float32 every score above
    1 - 6e-8 is exactly 1.0, which ties the most confident images and the threshold."""
    return torch.softmax(logits.double(), 1)[:, 1].numpy()


def predict_proba(model: nn.Module, images: torch.Tensor, device: torch.device,
                  tta: bool = False) -> np.ndarray:
    """Pneumonia probability per image."""
    return proba(predict_logits(model, images, device, tta))


def fit(model: nn.Module, train: Split, val: Split, phases: list[Phase], *, batch_size: int,
        weight_decay: float, label_smoothing: float, sampler: str, augment: dict | None,
        generator: torch.Generator, device: torch.device, live,
        precision: str = "fp32") -> list[float]:
    """Train through `phases`, logging loss and accuracy per epoch; return the LR of every step.

    `precision`: `bf16` or `fp32`, already resolved (`resolve_precision`)."""
    if precision not in ("bf16", "fp32"):
        raise CxrError(f"fit: precision must be bf16 or fp32, not {precision!r}.")
    model.to(device, memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    # The uint8 cache is small (68 MB at 128 px): keep it where the model runs, so a batch is an
    # index into device memory rather than a host gather and copy per step.
    images, labels = train.images.to(device), train.labels.to(device)
    lrs: list[float] = []
    for phase in phases:
        for p in model.parameters():
            p.requires_grad_(phase.trainable is None)
        for p in phase.trainable or []:
            p.requires_grad_(True)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=phase.max_lr, weight_decay=weight_decay)
        total_steps = phase.epochs * steps_per_epoch(len(train), batch_size)
        schedule = OneCycleLR(optimizer, max_lr=phase.max_lr, total_steps=total_steps)
        for epoch in range(phase.epochs):
            model.train()
            started = time.perf_counter()
            loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
            for idx in batches(make_sampler(train.labels, sampler, generator), batch_size):
                x = to_input(images[idx], device)
                y = labels[idx]
                if augment:
                    x = augment_batch(x, augment, generator)
                with autocast(device, precision == "bf16"):
                    logits = model(x).float()
                loss = criterion(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lrs.append(schedule.get_last_lr()[0])
                schedule.step()
                loss_sum += loss.detach() * len(idx)
                correct += (logits.argmax(1) == y).sum()
            seconds = time.perf_counter() - started
            val_logits = predict_logits(model, val.images, device)
            results = {
                "train/loss": loss_sum.item() / len(train),
                "train/acc": correct.item() / len(train),
                "val/loss": nn.functional.cross_entropy(val_logits, val.labels).item(),
                "val/acc": (val_logits.argmax(1) == val.labels).float().mean().item(),
            }
            for key, value in results.items():
                live.log_metric(key, round(value, 6))
            live.next_step()
            print(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: "
                  + " ".join(f"{k} {v:.4f}" for k, v in results.items())
                  + f" ({len(train) / seconds:.0f} img/s)", flush=True)
    for p in model.parameters():
        p.requires_grad_(True)
    return lrs
