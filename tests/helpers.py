"""Builders of small datasets and archives for the tests."""

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int = 0, size: int = 40, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), "L")
    buf = io.BytesIO()
    img.convert(mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_images(folder: Path, prefix: str, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}{i}.jpeg").write_bytes(jpeg_bytes(seed + i))


def kaggle_folder(root: Path, n: int = 4) -> Path:
    """A small valid Kaggle layout: train and test, both classes, Kermany-style names."""
    for split, offset in (("train", 0), ("test", 100)):
        write_images(root / split / "NORMAL", f"IM-{offset:02d}", n, offset)
        write_images(root / split / "PNEUMONIA", f"person{offset}_bacteria_", n, offset + 50)
    return root


def zip_of(folder: Path, prefix: str = "ChestXRay2017/chest_xray/",
           extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
