"""Preprocessing options of `prepare` (stretch | pad | crop, low-pass) and the acquisition
record, and `cxr.predict` repeating them from the checkpoint."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cxr.images import acquisition, decode_gray
from cxr.models import build_model, load_checkpoint, save_checkpoint
from cxr.predict import main
from cxr.prepared import decode_many
from cxr.resize import resize
from cxr.shortcuts import laplacian_energy
from cxr.train import predict_proba


def halves(w: int = 200, h: int = 100) -> bytes:
    """A PNG whose left half is white and right half black."""
    arr = np.zeros((h, w), np.uint8)
    arr[:, : w // 2] = 255
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_stretch_pad_crop_geometry():
    # Pixels next to an edge are blended by the antialiased resize; the rest must be exact.
    stretch = decode_gray(halves(), 10, "stretch")
    assert (stretch[:, :4] == 255).all() and (stretch[:, 6:] == 0).all()
    crop = decode_gray(halves(), 10, "crop")  # the centred 100 x 100: half white, half black
    assert (crop[:, :4] == 255).all() and (crop[:, 6:] == 0).all()
    tall = decode_gray(halves(100, 200), 10, "crop")  # the middle rows of a tall image
    assert (tall[:, :4] == 255).all() and (tall[:, 6:] == 0).all()
    pad = decode_gray(halves(), 20, "pad")  # rows 5..14 hold the image, the rest the mean grey
    assert (pad[:4] == 128).all() and (pad[16:] == 128).all()
    assert (pad[6:14, :8] == 255).all() and (pad[6:14, 12:] == 0).all()
    square = decode_gray(halves(100, 100), 10)
    for mode in ("pad", "crop"):
        assert np.array_equal(decode_gray(halves(100, 100), 10, mode), square)


def test_lowpass_smooths_and_bad_options_are_refused():
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, "PNG")
    sharp, soft = decode_gray(buf.getvalue(), 64), decode_gray(buf.getvalue(), 64, lowpass=1.0)
    assert laplacian_energy(soft[None])[0] < 0.5 * laplacian_energy(sharp[None])[0]
    assert abs(float(soft.mean()) - float(sharp.mean())) < 2
    with pytest.raises(ValueError, match="prepare.resize"):
        decode_gray(halves(), 10, "squash")
    with pytest.raises(ValueError, match="prepare.lowpass"):
        decode_gray(halves(), 10, lowpass=-1)


def test_acquisition_record(tmp_path):
    path = tmp_path / "x.jpeg"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(path, quality=80)
    assert acquisition(path.read_bytes()) == {"width": 300, "height": 200, "aspect": 1.5,
                                 "file_size": path.stat().st_size, "color_mode": "RGB",
                                 "bit_depth": 8}


def test_predict_repeats_the_checkpoints_preprocessing(tmp_path, capsys):
    """Non-square files: predict pads and blurs as the checkpoint says `prepare` did."""
    rng = np.random.default_rng(1)
    files = []
    for i in range(4):
        path = tmp_path / f"img{i}.jpeg"
        Image.fromarray(rng.integers(0, 256, (60, 120), dtype=np.uint8)).save(path)
        files.append(path)
    model_path = tmp_path / "m.pt"
    save_checkpoint(model_path, build_model("cnn8", width=8), "cnn8", {"width": 8}, 32, 48,
                    preprocess={"resize": "pad", "lowpass": 1.0})
    model_path.with_suffix(".threshold.json").write_text(json.dumps({"threshold": 0.5}))
    assert main(["--model", str(model_path), *map(str, files), "--json"]) == 0
    got = [r["probability"] for r in json.loads(capsys.readouterr().out)]
    model, ckpt = load_checkpoint(model_path)
    assert ckpt["preprocess"] == {"resize": "pad", "lowpass": 1.0}
    scores = {}
    for mode, lowpass in (("pad", 1.0), ("stretch", 0.0)):
        images = resize(torch.from_numpy(decode_many(files, 48, 1, mode, lowpass)), 32)
        scores[mode] = [float(p) for p in predict_proba(model, images, torch.device("cpu"))]
    assert got == scores["pad"] != scores["stretch"]
