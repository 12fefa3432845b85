import numpy as np
import pytest
import torch

from cxr.inputs import batches, load_split, make_sampler, random_affine, random_intensity
from cxr.prepared import cache_side
from cxr.resize import resize
from cxr.split import Record


def class_fraction(kind: str, labels: torch.Tensor, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    drawn = torch.tensor(list(make_sampler(labels, kind, g)))
    return labels[drawn].float().mean().item()


def test_weighted_sampler_balances_an_epoch_none_follows_data():
    labels = torch.tensor([0] * 260 + [1] * 740)  # Kermany-like 1:2.9
    assert abs(class_fraction("weighted", labels) - 0.5) < 0.05
    assert class_fraction("none", labels) == pytest.approx(0.74)  # a permutation
    g = torch.Generator().manual_seed(1)
    sizes = [len(b) for b in batches(make_sampler(labels, "none", g), 32)]
    assert sum(sizes) == 1000 and max(sizes) == 32


def test_weighted_batches_are_near_balanced():
    labels = torch.tensor([0] * 100 + [1] * 900)
    g = torch.Generator().manual_seed(3)
    fractions = [labels[b].float().mean().item()
                 for b in batches(make_sampler(labels, "weighted", g), 100)]
    assert abs(np.mean(fractions) - 0.5) < 0.05
    assert all(0.3 < f < 0.7 for f in fractions)


def test_augmentation_is_seeded_per_sample_and_identity_when_off():
    x = torch.rand(4, 1, 32, 32)
    aug = {"rotation": 15, "shear": 10, "scale": 0.1, "translate": 0.05, "hflip": 0.5}
    a = random_affine(x, aug, torch.Generator().manual_seed(0))
    b = random_affine(x, aug, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.allclose(a[0], x[0])
    off = {k: 0 for k in aug}
    assert torch.allclose(random_affine(x, off, torch.Generator()), x, atol=1e-5)
    flip = dict(off, hflip=1.0)
    assert torch.allclose(random_affine(x, flip, torch.Generator()), x.flip(-1), atol=1e-5)


def test_intensity_jitter_is_seeded_bounded_and_identity_when_off():
    x = torch.rand(6, 1, 16, 16)
    aug = {"brightness": 0.1, "contrast": 0.2, "gamma": 0.25}
    a = random_intensity(x, aug, torch.Generator().manual_seed(0))
    assert torch.equal(a, random_intensity(x, aug, torch.Generator().manual_seed(0)))
    assert a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, x)
    means = a.mean(dim=(1, 2, 3))
    assert means.std() > 0  # each image gets its own exposure
    off = {k: 0 for k in aug}
    assert torch.allclose(random_intensity(x, off, torch.Generator()), x, atol=1e-6)


def test_resize_keeps_uint8_and_content_and_load_split_checks_the_cache(tmp_path):
    gradient = torch.linspace(0, 255, 64).round().to(torch.uint8).expand(3, 64, 64).clone()
    assert resize(gradient, 64) is gradient
    small = resize(gradient, 32)
    assert small.dtype == torch.uint8 and small.shape == (3, 32, 32)
    assert torch.all(small[:, :, 1:].int() >= small[:, :, :-1].int())  # still a left-right ramp
    assert abs(small.float().mean() - gradient.float().mean()) < 1
    np.save(tmp_path / "val.npy", gradient.numpy())
    (tmp_path / "manifest.csv").write_text(
        "index,path,label,split,patient,pathogen\n"
        + "".join(f"{i},v/{i}.jpeg,{i % 2},val,P{i},normal\n" for i in range(3)))
    split = load_split(tmp_path, "val", 32)
    assert torch.equal(split.images, small) and split.cache_size == 64
    larger = load_split(tmp_path, "val", 128)  # never upsampled: the cache as it is
    assert torch.equal(larger.images, gradient) and larger.cache_size == 64


def test_cache_side_never_upsamples():
    """The cache is prepare.image_size, or the smallest raw side where that is smaller."""
    def rec(w: int, h: int) -> Record:
        return Record("x.jpeg", 0, "train", "p", "normal", width=w, height=h)

    assert cache_side([rec(1000, 800), rec(2000, 1500)], 128) == 128
    assert cache_side([rec(64, 64), rec(300, 200)], 128) == 64
    assert cache_side([rec(90, 70)], 128) == 70  # the short side of a non-square image
