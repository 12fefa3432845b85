import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cxr import CxrError
from cxr.models import (
    ResNet34,
    build_model,
    load_checkpoint,
    pretrain,
    read_state_dict,
    save_checkpoint,
)


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("arch, convs, bn", [("cnn8", 8, 0), ("cnn11", 11, 11)])
def test_cnn_layer_counts_and_shapes(arch, convs, bn):
    model = build_model(arch, width=8, dropout=0.2)
    assert count(model, nn.Conv2d) == convs
    assert count(model, nn.BatchNorm2d) == bn
    assert count(model, nn.Linear) == 1
    assert (count(model, nn.Dropout) + count(model, nn.Dropout2d) > 0) == (arch == "cnn11")
    for size in (32, 64, 96):
        assert model(torch.rand(3, 1, size, size)).shape == (3, 2)


def test_resnet34_head_and_shape():
    model = build_model("resnet34")
    assert count(model, nn.Conv2d) == 36  # 33 in the residual stages + stem + 3 downsample
    assert model.net.fc.out_features == 2
    assert model.eval()(torch.rand(2, 1, 64, 64)).shape == (2, 2)


def test_pretrain_from_saved_state_dict(tmp_path):
    source = ResNet34()
    path = tmp_path / "resnet34.pt"
    torch.save(source.net.state_dict(), path)  # an ImageNet-style file, 2-class fc included
    model = ResNet34()
    pretrain(model, str(path))
    assert torch.equal(model.net.conv1.weight, source.net.conv1.weight)
    assert torch.equal(model.net.layer4[2].bn2.running_var, source.net.layer4[2].bn2.running_var)


def test_imagenet_weights_from_torch_cache(tmp_path, monkeypatch):
    """`imagenet` reads torchvision's cached file first; here a state_dict we saved there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torchvision_net = ResNet34().net
    torchvision_net.fc = nn.Linear(512, 1000)  # ImageNet head, dropped on load
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision_net.state_dict(), cache / "resnet34-b627a593.pth")
    model = ResNet34()
    pretrain(model, "imagenet")
    assert torch.equal(model.net.layer1[0].conv1.weight, torchvision_net.layer1[0].conv1.weight)
    assert model.net.fc.out_features == 2


def test_imagenet_weights_unavailable_names_both_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CxrError) as err:
        pretrain(ResNet34(), "imagenet")
    message = str(err.value)
    assert "resnet34-b627a593.pth" in message and str(tmp_path) in message
    assert "resnet34.weights=none" in message


@pytest.mark.parametrize("content", ["text", "cnn8", "missing"])
def test_wrong_weights_file_gives_clear_error(tmp_path, content):
    path = tmp_path / "weights.pt"
    if content == "text":
        path.write_text("not a checkpoint")
    elif content == "cnn8":
        torch.save(build_model("cnn8").state_dict(), path)
    with pytest.raises(CxrError, match=str(path)):
        pretrain(ResNet34(), str(path))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(CxrError, match="cannot be read"):
        read_state_dict(path)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("cnn11", width=8, dropout=0.1).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, "cnn11", {"width": 8, "dropout": 0.1}, 32, 48,
                    {"weights": "none"})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(loaded(x), model(x))
    assert meta["image_size"] == 32 and meta["info"] == {"weights": "none"}


def test_training_stages_skip_heavy_imports():
    """Every stage is its own process, so start-up counts (on a GPU most of a stage's time):
    building and training the CNNs needs neither torchvision nor scikit-learn (2.7 s here)."""
    # pandas is left out: dvclive imports it whenever it is installed (dvclive/utils.py)
    code = ("import sys, cxr.recipes; print(sorted({'torchvision', 'sklearn', 'scipy', "
            "'matplotlib'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
