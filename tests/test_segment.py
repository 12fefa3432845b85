"""Lung masks: read at exactly the image's geometry (asymmetric images, every resize mode), and
a U-Net that learns the synthetic phantoms' lungs."""

import numpy as np
import pytest
import torch
from PIL import Image

from cxr.images import decode_gray
from cxr.masks import read_mask, reference_masks
from cxr.resize import resize
from cxr.segment import dice, train_segmenter
from cxr.synthetic import _anatomy, render
from cxr.unet import UNet, predict_masks

W, H = 90, 60  # landscape, like Kermany's PNEUMONIA files
REGION = (slice(5, 25), slice(5, 35))  # rows, cols: upper left, off-centre


def asymmetric_case(tmp_path):
    """An image bright only in REGION, and its mask saved as the shared masks are: 224 x 224,
    stretched like their images."""
    pixels = np.zeros((H, W), np.uint8)
    pixels[REGION] = 255
    Image.fromarray(pixels).save(tmp_path / "x.png")
    mask = Image.fromarray(pixels).resize((224, 224), Image.Resampling.NEAREST)
    mask.save(tmp_path / "m.png")
    return tmp_path / "x.png", tmp_path / "m.png"


@pytest.mark.parametrize("mode", ["stretch", "pad", "crop"])
def test_mask_lands_where_the_image_does(tmp_path, mode):
    image, mask = asymmetric_case(tmp_path)
    seen = decode_gray(image, size=32, resize=mode) >= 128
    read = read_mask(mask, W, H, 32, mode)
    assert read.shape == (32, 32) and read.dtype == bool
    d = dice(read[None], seen[None])[0]
    assert d > 0.9, d
    assert dice(read[None, :, ::-1], seen[None])[0] < 0.5  # a mirrored mask would fail
    assert dice(read[None, ::-1], seen[None])[0] < 0.5  # so would an upside-down one
    if mode == "pad":  # the letterbox is not lung
        assert not read[:7].any() and not read[-7:].any()


def test_reference_masks_follow_the_manifest(tmp_path):
    (tmp_path / "train" / "NORMAL").mkdir(parents=True)
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "train/NORMAL/a.png")
    rows = [{"path": "train/NORMAL/a.jpeg", "width": 20, "height": 20},
            {"path": "train/NORMAL/b.jpeg", "width": 20, "height": 20}]
    masks, has = reference_masks(rows, tmp_path, 8)
    assert has.tolist() == [True, False]
    assert masks[0].all() and not masks[1].any()


def phantoms(n: int, seed: int, size: int = 32):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for i in range(n):
        pathogen = [None, "bacteria", "virus"][i % 3]
        x, lung = render(rng, _anatomy(rng), size, pathogen, "train", 4.0)
        images.append(x)
        masks.append(lung)
    return torch.from_numpy(np.stack(images)), np.stack(masks)


def test_unet_learns_the_phantoms_lungs():
    """Trained on 192 phantoms at 16 px (the masks at 32 px), the U-Net finds the lungs of
    unseen phantoms with Dice above 0.9; an untrained one does not."""
    train, val, test = phantoms(192, 1), phantoms(48, 2), phantoms(48, 3)
    cfg = {"width": 8, "depth": 2, "epochs": 6, "batch_size": 16, "lr": 0.01, "hflip": True}
    torch.manual_seed(0)
    untrained = UNet(8, 2).eval()
    model, history = train_segmenter(resize(train[0], 16), train[1], resize(val[0], 16), val[1],
                                     cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert len(history) == 6 and max(history) == history[int(np.argmax(history))]
    cpu = torch.device("cpu")
    score = dice(predict_masks(model, resize(test[0], 16), 32, cpu), test[1]).mean()
    before = dice(predict_masks(untrained, resize(test[0], 16), 32, cpu), test[1]).mean()
    assert score > 0.9, score
    assert before < 0.7
    assert sum(p.numel() for p in model.parameters()) < 50_000


def test_segmenter_checkpoint_round_trip(tmp_path):
    """Saved and loaded with weights_only: the same masks; a classifier checkpoint is refused."""
    from cxr import CxrError
    from cxr.unet import load_segmenter, save_segmenter
    torch.manual_seed(0)
    model = UNet(4, 2).eval()
    save_segmenter(tmp_path / "seg.pt", model, {"width": 4, "depth": 2}, 16)
    loaded, size = load_segmenter(tmp_path / "seg.pt")
    images = phantoms(4, 5, 16)[0]
    cpu = torch.device("cpu")
    assert size == 16
    assert np.array_equal(predict_masks(model, images, 32, cpu),
                          predict_masks(loaded, images, 32, cpu))
    torch.save({"arch": "cnn8", "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CxrError, match="not a segmenter checkpoint"):
        load_segmenter(tmp_path / "other.pt")
