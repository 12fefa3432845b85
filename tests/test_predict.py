import json

import numpy as np
import pytest
import torch
from PIL import Image

from cxr.models import build_model, load_checkpoint, save_checkpoint
from cxr.predict import main
from cxr.prepared import decode_many
from cxr.resize import resize
from cxr.roi import apply_roi
from cxr.segment import train_segmenter
from cxr.synthetic import generate
from cxr.train import predict_proba
from cxr.unet import segment_images

from conftest import ROOT, real_data_or_skip


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "models" / "cnn8.pt"
    save_checkpoint(path, build_model("cnn8", width=8), "cnn8", {"width": 8}, 32, 48)
    path.with_suffix(".threshold.json").write_text(json.dumps({"threshold": 0.3, "tta": False}))
    return path


def test_predict_json_on_synthetic_and_bad_files(tmp_path, model_path, capsys):
    generate(tmp_path / "syn", 8, 4, 256, seed=1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.jpeg").write_text("not an image")
    Image.new("L", (64, 64), 100).save(bad / "small.png")
    Image.new("L", (900, 300), 100).save(bad / "wide.png")
    colour = np.zeros((256, 256, 3), np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(bad / "colour.png")

    assert main(["--model", str(model_path), str(tmp_path / "syn"), str(bad), "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    synthetic = [r for p, r in rows.items() if "/syn/" in p]
    assert len(synthetic) == 12
    for r in synthetic:
        assert 0 <= r["probability"] <= 1 and r["flags"] == [] and r["threshold"] == 0.3
        assert r["label"] == ("PNEUMONIA" if r["probability"] >= 0.3 else "NORMAL")
    flags = {p.rsplit("/", 1)[1]: r["flags"] for p, r in rows.items() if "/bad/" in p}
    assert flags["text.jpeg"][0].startswith("cannot be decoded")
    assert rows[str(bad / "text.jpeg")]["probability"] is None
    assert any("small" in f for f in flags["small.png"])
    assert any("aspect ratio" in f for f in flags["wide.png"])
    assert any("colour" in f for f in flags["colour.png"])


def test_predict_table_and_usage_errors(tmp_path, model_path, capsys):
    generate(tmp_path / "syn", 8, 4, 64, seed=2)
    one = next((tmp_path / "syn").rglob("*.jpeg"))
    assert main(["--model", str(model_path), str(one)]) == 0
    out = capsys.readouterr().out
    assert "p(pneumonia)" in out and str(one) in out
    assert main(["--model", str(tmp_path / "missing.pt"), str(one)]) == 2
    assert main(["--model", str(model_path), str(tmp_path / "nowhere")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(model_path)])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("tta", [False, True])
def test_predict_preprocesses_and_flips_like_the_pipeline(tmp_path, model_path, capsys, tta):
    """Decode at the cache size, then resize to the model's size, and average in the mirror
    image only where evaluate fitted the threshold on such scores: the scores evaluate saw."""
    model_path.with_suffix(".threshold.json").write_text(json.dumps({"threshold": 0.3,
                                                                     "tta": tta}))
    generate(tmp_path / "syn", 8, 4, 200, seed=3)
    files = sorted((tmp_path / "syn").rglob("*.jpeg"))[:5]
    assert main(["--model", str(model_path), *map(str, files), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {r["path"]: r["probability"] for r in rows}
    assert {r["tta"] for r in rows} == {tta}
    model, _ = load_checkpoint(model_path)
    images = resize(torch.from_numpy(decode_many(files, 48, workers=1)), 32)
    for flip in (False, True):
        expected = predict_proba(model, images, torch.device("cpu"), tta=flip)
        same = [got[str(f)] for f in files] == [float(p) for p in expected]
        assert same == (flip == tta)


def test_predict_without_threshold_file_warns_and_does_not_flip(tmp_path, model_path, capsys):
    model_path.with_suffix(".threshold.json").unlink()
    generate(tmp_path / "syn", 4, 4, 64, seed=4)
    assert main(["--model", str(model_path), str(tmp_path / "syn"), "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert {(r["threshold"], r["tta"]) for r in rows} == {(0.5, False)}
    assert "threshold.json not found" in captured.err


def test_predict_decodes_full_resolution_originals_as_prepare_does(tmp_path, model_path, capsys):
    """Originals as the Mendeley download has them (1000-2900 px, odd aspect ratios, some RGB):
    predict decodes each as `prepare` decodes training files, to the same scores."""
    sample = real_data_or_skip(ROOT.parent / "shared/data/chest_xray_fullres_sample")
    files = sorted(sample.rglob("*.jpeg"))
    modes = {}
    for f in files:
        with Image.open(f) as img:
            modes[f] = (img.mode, img.size)
    rgb = [f for f, (mode, _) in modes.items() if mode == "RGB"][:2]
    wide = [f for f, (_, (w, h)) in modes.items() if w / h > 1.4 and f not in rgb][:2]
    picked = rgb + wide + files[:2]
    assert len(rgb) == 2 and len(wide) == 2 and max(modes[f][1][0] for f in picked) > 1000
    assert main(["--model", str(model_path), *map(str, picked), "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    model, _ = load_checkpoint(model_path)
    images = resize(torch.from_numpy(decode_many(picked, 48, workers=1)), 32)
    expected = predict_proba(model, images, torch.device("cpu"))
    for f, p in zip(picked, expected, strict=True):
        row = rows[str(f)]
        assert row["probability"] == p and not any("decoded" in x for x in row["flags"])
        assert not any("colour" in x for x in row["flags"])  # grey saved as RGB


@pytest.mark.parametrize("roi", ["lungs_crop", "lungs_mask"])
def test_predict_segments_and_cuts_to_the_lungs_like_training(tmp_path, capsys, roi):
    """A lung-region model carries its segmenter: predict segments each decoded image with it
    and applies the same roi before the resize, and a checkpoint whose preprocess says
    `equalize` gets equalised pixels."""
    rng = np.random.default_rng(5)
    files = []
    for i in range(6):  # a bright frame around a dark, textured middle: the "lungs"
        pixels = np.full((96, 120), 200.0)
        pixels[24:72, 20:100] = 40 + 30 * rng.random((48, 80))
        files.append(tmp_path / f"x{i}.png")
        Image.fromarray((pixels + 10 * rng.random((96, 120))).astype(np.uint8)).save(files[-1])
    cache = torch.from_numpy(decode_many(files, 48, workers=1, equalize=True))
    middle = np.zeros((48, 48, 48), bool)
    middle[:, 12:36, 8:40] = True  # where the dark middle lands in the 48 px cache
    cfg = {"width": 4, "depth": 2, "epochs": 6, "batch_size": 8, "lr": 0.02, "hflip": False}
    torch.manual_seed(0)
    seen = resize(cache, 24).repeat(8, 1, 1)
    unet, _ = train_segmenter(seen, middle, seen, middle, cfg, torch.Generator().manual_seed(0),
                              torch.device("cpu"))
    capsys.readouterr()  # the training log
    segmenter = {"arch": "unet", "config": {"width": 4, "depth": 2}, "image_size": 24,
                 "state_dict": unet.state_dict()}
    path = tmp_path / "m.pt"
    pre = {"resize": "stretch", "lowpass": 0.0, "equalize": True, "roi": roi, "roi_margin": 0.05}
    save_checkpoint(path, build_model("cnn8", width=8), "cnn8", {"width": 8}, 32, 48,
                    preprocess=pre, segmenter=segmenter)
    assert main(["--model", str(path), *map(str, files), "--json"]) == 0
    got = [r["probability"] for r in json.loads(capsys.readouterr().out)]
    model, _ = load_checkpoint(path)
    lungs = segment_images(unet, 24, cache, torch.device("cpu"))
    assert 0.1 < lungs.float().mean() < 0.8
    cut, _ = apply_roi(cache, lungs, roi, 0.05)
    assert not torch.equal(cut, cache)
    expected = predict_proba(model, resize(cut, 32), torch.device("cpu"))
    assert got == [float(p) for p in expected]
    plain = predict_proba(model, resize(cache, 32), torch.device("cpu"))
    assert got != [float(p) for p in plain]
