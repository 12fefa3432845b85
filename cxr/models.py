"""CNN8, CNN11 and ResNet34, all taking (N, 1, H, W) floats in [0, 1] and returning 2 logits."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cxr import CxrError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TORCH_CACHE_HINT = (
    "either place resnet34-b627a593.pth (from https://download.pytorch.org/models/) in "
    "{cache}, or train without it: -S resnet34.weights=none, or point resnet34.weights at a "
    "ResNet34 state_dict file")


def _conv(c_in: int, c_out: int, stride: int = 1, bn: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    return [*layers, nn.ReLU(inplace=True)]


class CNN(nn.Module):
    """A VGG-style stack: a strided stem conv, then blocks of convs each ending in max-pooling.

    `blocks=(1, 2, 2, 2)` with the stem gives 8 convs (CNN8); `(2, 2, 3, 3)` gives 11 (CNN11).
    """

    def __init__(self, blocks: tuple[int, ...], width: int = 16, bn: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        layers, c = _conv(1, width, stride=2, bn=bn), width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            for _ in range(n):
                layers += _conv(c, c_out, bn=bn)
                c = c_out
            layers.append(nn.MaxPool2d(2))
            if dropout and i >= 1:
                layers.append(nn.Dropout2d(dropout / 2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  *([nn.Dropout(dropout)] if dropout else []), nn.Linear(c, 2))
        for m in self.modules():  # He init: PyTorch's default shrinks signals in deep ReLU stacks
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25))


class ResNet34(nn.Module):
    """torchvision's ResNet34 with a 2-class head; grayscale is repeated to 3 ImageNet channels."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision  # here, not at the top: its import takes ~1.6 s the CNNs don't need

        self.net = torchvision.models.resnet34(weights=None)
        self.net.fc = nn.Linear(self.net.fc.in_features, 2)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.expand(-1, 3, -1, -1) - self.mean) / self.std)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.net.fc.parameters())

    def load_backbone(self, state: dict, source: str) -> None:
        """Load an ImageNet-style ResNet34 state_dict, keeping our own 2-class head."""
        state = {k.removeprefix("net."): v for k, v in state.items()
                 if not k.removeprefix("net.").startswith("fc.")}
        own = {k: v for k, v in self.net.state_dict().items() if not k.startswith("fc.")}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise CxrError(
                f"{source}: not a ResNet34 state_dict ({len(missing)} missing keys e.g. "
                f"{missing[:2]}, {len(unexpected)} unexpected e.g. {unexpected[:2]}, "
                f"{len(wrong)} of wrong shape e.g. {wrong[:2]}); pass a file saved with "
                "torch.save(torchvision.models.resnet34().state_dict(), PATH).")
        self.net.load_state_dict(state, strict=False)


ARCHS = {
    "cnn8": lambda width=16, **_: CNN((1, 2, 2, 2), width),
    "cnn11": lambda width=16, dropout=0.0, **_: CNN((2, 2, 3, 3), width, bn=True,
                                                    dropout=dropout),
    "resnet34": lambda **_: ResNet34(),
}


def build_model(arch: str, **config) -> nn.Module:
    if arch not in ARCHS:
        raise CxrError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}.")
    return ARCHS[arch](**config)


def load_file(path: str | Path, missing: str,
              unreadable: str = "not a readable checkpoint") -> object:
    """torch.load(path, weights_only=True) onto the CPU; a CxrError `{path}: {missing}` where
    the file is absent and `{path}: {unreadable} (why)` where it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path}: {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unsafe-type errors all mean the same here
        raise CxrError(f"{path}: {unreadable} ({err}).") from None


def save_file(path: str | Path, obj: dict) -> None:
    """torch.save through a temporary file and a rename: never half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def read_state_dict(path: str | Path) -> dict:
    """torch.load with weights_only=True, unwrapping {"state_dict": ...} checkpoints."""
    obj = load_file(path, "weights file not found.",
                    "cannot be read as a PyTorch weights file")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CxrError(f"{path}: holds no state_dict (a mapping of names to tensors).")
    return obj


def imagenet_state_dict() -> dict:
    """torchvision's ResNet34 ImageNet weights from the torch hub cache, else downloaded."""
    import torchvision

    weights = torchvision.models.ResNet34_Weights.IMAGENET1K_V1
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=True)
    except Exception as err:  # URLError, SSL, HTTP errors, a corrupt cached file
        raise CxrError(f"ImageNet weights for ResNet34 are not in the torch cache and could not "
                       f"be downloaded ({err}); " + TORCH_CACHE_HINT.format(cache=cache)) from None


def pretrain(model: ResNet34, weights: str) -> None:
    """Apply `resnet34.weights`: none, imagenet, or a path to a state_dict."""
    if weights == "imagenet":
        model.load_backbone(imagenet_state_dict(), "ImageNet weights")
    elif weights != "none":
        model.load_backbone(read_state_dict(weights), weights)


def threshold_path(model_path: str | Path) -> Path:
    """The JSON beside a checkpoint holding its validation-fitted decision threshold."""
    return Path(model_path).with_suffix(".threshold.json")


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: the feature maps one stage before the last (8 x 8 cells or
    finer). The last stage's 4 x 4 cells are too coarse to tell a border strip from the lung
    fields: on a toy whose label sits in the border (tests/test_audit.py) they put the peak
    one cell inside it."""
    if isinstance(model, ResNet34):
        return model.net.layer3
    if isinstance(model, CNN):
        pools = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
        return [m for m in model.features[:pools[-2]] if isinstance(m, nn.ReLU)][-1]
    raise CxrError(f"no Grad-CAM layer known for {type(model).__name__}.")


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, config: dict,
                    image_size: int, cache_size: int, info: dict | None = None,
                    trained_hflip: float = 0.0, preprocess: dict | None = None,
                    segmenter: dict | None = None) -> None:
    """`image_size`: the model's input side; `cache_size`: the side images were first decoded
    to (prepare.image_size) before being resized to it, which predict repeats, as it repeats
    `preprocess` (prepare.resize, lowpass, equalize, roi and roi_margin) and, for a lung
    region, runs `segmenter` (the U-Net's saved dict, see `cxr.segment`);
    `trained_hflip`: the probability of a horizontal flip in training (test-time flips are
    only tried for models that saw flipped images)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_file(path, {"arch": arch, "config": config, "image_size": image_size,
                     "cache_size": cache_size, "info": info or {}, "trained_hflip": trained_hflip,
                     "preprocess": preprocess or {"resize": "stretch", "lowpass": 0.0},
                     "state_dict": state, **({"segmenter": segmenter} if segmenter else {})})


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from a checkpoint written by save_checkpoint."""
    ckpt = load_file(path, "checkpoint not found; train it with `dvc repro`.")
    if not isinstance(ckpt, dict) or not {"arch", "state_dict", "image_size"} <= set(ckpt):
        raise CxrError(f"{path}: not a checkpoint of this project (expected arch, config, "
                       "image_size and state_dict).")
    model = build_model(ckpt["arch"], **ckpt.get("config", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
