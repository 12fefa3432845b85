"""The shared training loop: it learns, keeps labels aligned with images, and honours
`precision`."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from cxr.inputs import Split
from cxr.models import build_model
from cxr.train import Phase, fit, predict_proba, resolve_precision

from helpers import NoLive


def easy_task(n: int, seed: int, size: int = 32) -> Split:
    """PNEUMONIA (1 in 4) images carry a bright disc at a random place; NORMAL ones do not."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.25).astype(np.int64)
    images = rng.normal(90, 20, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(size // 4, size - size // 4, 2)
        images[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 25] += 110
    images = torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8))
    ids = [f"p{i}" for i in range(n)]
    return Split(images, torch.from_numpy(labels), ids, ["normal"] * n, size)


AUGMENT = {"rotation": 10, "shear": 5, "scale": 0.1, "translate": 0.05, "hflip": 0.5,
           "brightness": 0.05, "contrast": 0.1, "gamma": 0.1}


@pytest.mark.parametrize("arch, sampler, augment, epochs, lr", [
    ("cnn8", "none", None, 4, 3e-3),
    ("cnn8", "weighted", None, 4, 3e-3),
    ("cnn11", "weighted", AUGMENT, 4, 3e-3),
    ("resnet34", "weighted", None, 3, 1e-3),
])
def test_each_architecture_learns_an_easy_task(arch, sampler, augment, epochs, lr):
    """Far above chance on held-out images: fails for a model that learns nothing, or for
    labels that drift from their images (a sampler's indices applied to one but not the
    other)."""
    torch.manual_seed(0)
    train, val, test = easy_task(384, 1), easy_task(64, 2), easy_task(200, 3)
    model = build_model(arch, width=8)
    fit(model, train, val, [Phase("train", epochs, lr)], batch_size=32, weight_decay=0.0,
        label_smoothing=0.0, sampler=sampler, augment=augment,
        generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), live=NoLive())
    p = predict_proba(model, test.images, torch.device("cpu"))
    y = test.labels.numpy()
    assert roc_auc_score(y, p) > 0.95
    assert ((p >= 0.5) == y).mean() > 0.85


class AutocastProbe(nn.Module):
    """Records whether CPU autocast was on during each forward pass."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16 * 16, 2)
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(torch.is_autocast_enabled("cpu"))
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("precision, autocast_on", [("fp32", False), ("bf16", True)])
def test_precision_switches_autocast(precision, autocast_on):
    data = easy_task(16, 0, size=16)
    model = AutocastProbe()
    fit(model, data, data, [Phase("train", 1, 1e-3)], batch_size=8, weight_decay=0.0,
        label_smoothing=0.0, sampler="none", augment=None, generator=torch.Generator(),
        device=torch.device("cpu"), live=NoLive(), precision=precision)
    training_steps = model.seen[:2]  # two batches, then validation (never autocast on CPU)
    assert training_steps == [autocast_on, autocast_on]


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in [(False, False, "fp32"), (True, False, "bf16"),
                                       (False, True, "bf16")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve_precision("auto", cpu) == expected
        assert resolve_precision("fp32", cpu) == "fp32"
        assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"


def test_frozen_phase_trains_the_head_and_adapts_batchnorm_statistics_only():
    """ResNet34's frozen phase (resnet34.frozen): every backbone weight, BatchNorm's affine
    parameters included, stays as it was; the head learns; BatchNorm's running statistics do
    update (the backbone runs in train mode), adapting the normalisation to X-rays as fastai's
    frozen phase does (`train_bn`). The unfrozen phase then trains everything."""
    torch.manual_seed(0)
    model = build_model("resnet34")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, val = easy_task(48, 1), easy_task(16, 2)
    fit(model, train, val, [Phase("frozen", 1, 1e-3, model.head_parameters())],
        batch_size=16, weight_decay=0.01, label_smoothing=0.0, sampler="none", augment=None,
        generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), live=NoLive())
    after = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    head = {"net.fc.weight", "net.fc.bias"}
    assert all(torch.equal(before[k], after[k]) for k in params - head)
    assert all(not torch.equal(before[k], after[k]) for k in head)
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(before[k], after[k]) for k in stats)
    assert all(p.requires_grad for p in model.parameters())  # handed back trainable
