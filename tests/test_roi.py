"""Lung-region inputs: the crop and the mask keep the lungs and drop what lies outside them,
move the masks with the pixels, and a border strip eraser that leaves the centre alone."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cxr.images import decode_gray
from cxr.inputs import erase_borders, load_split
from cxr.roi import FILL, apply_roi, lung_box


def scene(n: int = 3, side: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images with a textured 'lung' block at rows 10-29, cols 8-31, and a bright 4x4
    'marker' in the top-left corner: what a shortcut model would read."""
    g = torch.Generator().manual_seed(0)
    images = torch.full((n, side, side), 90, dtype=torch.uint8)
    lungs = torch.zeros((n, side, side), dtype=torch.bool)
    lungs[:, 10:30, 8:32] = True
    images[lungs] = torch.randint(0, 80, (int(lungs.sum()),), generator=g).to(torch.uint8)
    images[:, :4, :4] = 255
    return images, lungs


def test_lung_box_grows_by_the_margin_and_stays_in_the_image():
    _, lungs = scene(1)
    assert lung_box(lungs[0], 0.0) == (10, 8, 30, 32)
    assert lung_box(lungs[0], 0.1) == (6, 4, 34, 36)  # 4 px = 0.1 x 40 on every edge
    assert lung_box(lungs[0], 0.5) == (0, 0, 40, 40)
    assert lung_box(torch.zeros(40, 40, dtype=torch.bool), 0.1) == (0, 0, 40, 40)


def test_crop_fills_the_image_with_the_lungs_and_drops_the_corner_marker():
    images, lungs = scene()
    out, moved = apply_roi(images, lungs, "lungs_crop", 0.05)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert out.max() < 255  # the marker is outside the box
    assert moved.float().mean() > 0.65  # 480 of the 24 x 28 box: most of the frame
    assert lungs.float().mean() < 0.35
    # the lung pixels are the same pixels, stretched: their mean grey survives the resize
    assert abs(out[moved].float().mean() - images[lungs].float().mean()) < 4
    full, same = apply_roi(images, lungs, "full", 0.05)
    assert torch.equal(full, images) and torch.equal(same, lungs)


def test_an_empty_mask_keeps_the_whole_image():
    images, _ = scene(1)
    out, _ = apply_roi(images, torch.zeros_like(images, dtype=torch.bool), "lungs_crop", 0.05)
    assert torch.equal(out, images)


def test_mask_keeps_the_dilated_lungs_and_fills_the_rest():
    images, lungs = scene()
    out, moved = apply_roi(images, lungs, "lungs_mask", 0.05)  # 2 px of dilation at 40 px
    near = torch.zeros_like(lungs)
    near[:, 8:32, 6:34] = True
    assert torch.equal(out[near], images[near])
    assert (out[~near] == FILL).all() and torch.equal(moved, lungs)
    tight, _ = apply_roi(images, lungs, "lungs_mask", 0.0)
    assert (tight[~lungs] == FILL).all() and torch.equal(tight[lungs], images[lungs])
    with pytest.raises(ValueError, match="prepare.roi"):
        apply_roi(images, lungs, "lungs_box", 0.05)


def test_load_split_applies_the_roi_with_the_masks_and_refuses_it_without(tmp_path):
    images, lungs = scene(4)
    np.save(tmp_path / "val.npy", images.numpy())
    (tmp_path / "manifest.csv").write_text(
        "index,split,path,label,patient,pathogen\n"
        + "".join(f"{i},val,v{i}.png,{i % 2},p{i},normal\n" for i in range(4)))
    (tmp_path / "lungs").mkdir()
    np.save(tmp_path / "lungs" / "val.npy", lungs.numpy().astype(np.uint8))
    split = load_split(tmp_path, "val", 20, tmp_path / "lungs", "lungs_crop", 0.05)
    assert split.images.shape == (4, 20, 20) and split.images.max() < 255
    assert split.lungs.shape == (4, 20, 20) and split.lungs.float().mean() > 0.65
    plain = load_split(tmp_path, "val", 20, tmp_path / "lungs")
    assert plain.images.max() == 255 and plain.lungs.float().mean() < 0.35
    with pytest.raises(Exception, match="segment"):
        load_split(tmp_path, "val", 20, None, "lungs_mask", 0.05)
    np.save(tmp_path / "lungs" / "val.npy", lungs.numpy()[:3].astype(np.uint8))
    with pytest.raises(Exception, match="3 masks for 4 val images"):
        load_split(tmp_path, "val", 20, tmp_path / "lungs")


def test_erase_borders_fills_strips_with_the_mean_and_spares_the_centre():
    x = torch.rand(64, 1, 40, 40)
    g = torch.Generator().manual_seed(0)
    out = erase_borders(x, 1.0, 0.2, g)
    mean = x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    changed = out != x
    assert torch.equal(out[changed], mean[changed])
    assert not changed[:, :, 8:32, 8:32].any()  # at most 0.2 x 40 = 8 px deep
    assert changed.float().mean() > 0.2  # every edge of every image, at random depths
    assert torch.equal(out, erase_borders(x, 1.0, 0.2, torch.Generator().manual_seed(0)))
    before = g.get_state()
    assert torch.equal(erase_borders(x, 0.0, 0.2, g), x)
    assert torch.equal(g.get_state(), before)  # off: no draws, so older runs replay exactly


def test_equalize_evens_out_exposure():
    """The same anatomy exposed two ways: after equalisation the two caches nearly agree, and
    their histograms are near flat."""
    yy, xx = np.mgrid[0:64, 0:64] / 63
    base = (np.sin(6 * xx) * np.cos(4 * yy) + 1) / 2
    frames = []
    for pixels in (40 + 80 * base, 120 + 130 * base ** 0.7):  # dark and flat, bright and bent
        buf = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
        frames.append(buf.getvalue())
    plain = [decode_gray(f, 32).astype(float) for f in frames]
    even = [decode_gray(f, 32, equalize=True).astype(float) for f in frames]
    assert np.abs(plain[0] - plain[1]).mean() > 60
    assert np.abs(even[0] - even[1]).mean() < 6
    counts = np.histogram(even[0], bins=4, range=(0, 256))[0]
    assert counts.min() > 0.15 * counts.sum()
