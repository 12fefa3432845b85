import io

import numpy as np
import pytest
from PIL import Image

from cxr import CxrError
from cxr.images import decode_gray
from cxr.ingest import ingest

from helpers import jpeg_bytes, kaggle_folder, tree_digest, write_images


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def bad_dataset(root):
    kaggle_folder(root, n=6)
    normal = root / "train" / "NORMAL"
    good = jpeg_bytes(7, size=64)
    (normal / "IM-9001-0001.jpeg").write_bytes(good[:30] + bytes(range(256)) * 8)  # corrupt
    (normal / "IM-9002-0001.jpeg").write_bytes(good[: len(good) // 2])  # truncated
    (normal / "IM-9003-0001.jpeg").write_bytes(b"")  # zero bytes
    (normal / "IM-9004-0001.jpeg").write_text("this is not an image\n")
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    (normal / "IM-9005-0001.png").write_bytes(png_bytes(Image.fromarray(ramp)))
    buf = io.BytesIO()
    Image.new("CMYK", (50, 40), (10, 20, 30, 40)).save(buf, "JPEG")
    (normal / "IM-9006-0001.jpeg").write_bytes(buf.getvalue())
    (normal / "IM-9007-0001.png").write_bytes(png_bytes(Image.new("RGBA", (30, 30),
                                                                  (200, 10, 10, 128))))
    (normal / "IM-9008-0001.jpeg").write_bytes(jpeg_bytes(3, size=1))
    write_images(root / "train" / "EFFUSION", "x", 1)  # unexpected folder
    (root / "val" / "NORMAL").mkdir(parents=True)  # empty class folder
    write_images(root / "val" / "PNEUMONIA", "person999_virus_", 1)
    return root


def test_bad_files_are_excluded_good_ones_arrive_source_unchanged(tmp_path):
    src = bad_dataset(tmp_path / "src")
    before = tree_digest(src)
    report = ingest(src, tmp_path / "raw", max_excluded_fraction=0.5, workers=2)
    assert tree_digest(src) == before

    reasons = {e["path"]: e["reason"] for e in report["excluded_files"]}
    assert "corrupt" in reasons["train/NORMAL/IM-9001-0001.jpeg"] or \
        "not an image" in reasons["train/NORMAL/IM-9001-0001.jpeg"]
    assert "truncated" in reasons["train/NORMAL/IM-9002-0001.jpeg"]
    assert reasons["train/NORMAL/IM-9003-0001.jpeg"] == "empty file"
    assert "not an image" in reasons["train/NORMAL/IM-9004-0001.jpeg"]
    assert "unexpected location" in reasons["train/EFFUSION/x0.jpeg"]
    assert len(reasons) == 5 and report["excluded"] == 5

    raw = tmp_path / "raw"
    arrived = set(tree_digest(raw))
    assert arrived == set(before) - set(reasons)
    assert {k: before[k] for k in arrived} == tree_digest(raw)  # copied byte for byte
    assert report["counts"]["train"]["NORMAL"] == 6 + 4  # 16-bit, CMYK, RGBA, 1x1 accepted
    assert any("val/NORMAL" in w for w in report["warnings"])

    sixteen = decode_gray(raw / "train/NORMAL/IM-9005-0001.png")
    assert sixteen.dtype == np.uint8 and sixteen.min() == 0 and sixteen.max() == 255
    assert decode_gray(raw / "train/NORMAL/IM-9006-0001.jpeg", size=32).shape == (32, 32)
    assert decode_gray(raw / "train/NORMAL/IM-9008-0001.jpeg", size=32).shape == (32, 32)


def test_too_many_bad_files_fail_and_write_nothing(tmp_path):
    src = bad_dataset(tmp_path / "src")
    with pytest.raises(CxrError, match="max_excluded_fraction"):
        ingest(src, tmp_path / "raw", max_excluded_fraction=0.01, workers=2)
    assert not (tmp_path / "raw").exists()


def test_empty_required_class_fails(tmp_path):
    src = kaggle_folder(tmp_path / "src")
    for f in (src / "test" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(CxrError, match="test/NORMAL has no valid images"):
        ingest(src, tmp_path / "raw", max_excluded_fraction=0.01, workers=1)


def test_duplicates_reported_with_train_test_crossing(tmp_path):
    src = kaggle_folder(tmp_path / "src")
    same = (src / "train/NORMAL/IM-000.jpeg").read_bytes()
    (src / "test/NORMAL/IM-777-0001.jpeg").write_bytes(same)
    (src / "train/NORMAL/IM-778-0001.jpeg").write_bytes(same)
    report = ingest(src, tmp_path / "raw", 0.01, workers=1)
    assert report["duplicates"] == {"groups": 1, "files": 3, "groups_crossing_train_test": 1}
