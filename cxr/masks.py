"""Lung masks: obtained with the images (the generator's geometry, or a folder of PNGs), and
read at the cache's geometry, so that a mask pixel covers the same anatomy as an image pixel."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from cxr import CLASSES, CxrError
from cxr.atomic import atomic_dir
from cxr.images import square


def copy_masks(src: str | Path, dst: str | Path) -> int:
    """Copy every `<split>/<CLASS>/<stem>.png` under `src` to `dst` (atomically); the source
    is only read."""
    src = Path(src)
    if not src.is_dir():
        raise CxrError(f"masks.path={src}: not a folder; point it at lung masks laid out as "
                       "<split>/<CLASS>/<stem>.png (255 = lung), e.g. the v7labs-derived "
                       "lung_masks folder (README, Real data).")
    files = sorted(p for p in src.glob("*/*/*.png") if p.is_file())
    if not files:
        raise CxrError(f"masks.path={src}: no <split>/<CLASS>/<stem>.png files found.")
    with atomic_dir(dst) as tmp:
        for path in files:
            out = tmp / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
    return len(files)


V7LABS_MASKS = "annotations/all-images-semantic-masks"  # 0 background, 127 Ignore, 255 Lung
V7LABS_MANUAL = ("download the v7labs/covid-19-xray-dataset repository at the pinned commit "
                 "(masks.url) as a zip by hand, save it at masks.archive, and run again")


def read_table(path: str | Path) -> list[tuple[str, str]]:
    """(Kermany path, mask id) rows of the file-to-mask table, each path checked to be
    <split>/<CLASS>/<file>: the table names where masks are written."""
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"masks.table={path}: not found; it ships with the project "
                       "(data/v7labs_lung_masks.csv).")
    with path.open(newline="") as f:
        rows = [(r["kermany_path"], r["mask_id"]) for r in csv.DictReader(f)]
    for rel, mask_id in rows:
        parts = PurePosixPath(rel).parts
        if (len(parts) != 3 or parts[0] not in ("train", "val", "test")
                or parts[1] not in CLASSES or not mask_id.isdigit()):
            raise CxrError(f"{path}: row {rel!r}, {mask_id!r} is not <split>/<CLASS>/<file> "
                           "with a numeric mask id.")
    return rows


def masks_from_v7labs(archive: str | Path, table: str | Path, dst: str | Path) -> int:
    """Write `<split>/<CLASS>/<stem>.png` under `dst` (atomically) for every table row whose
    semantic mask is in the v7labs archive; nothing else of the archive is extracted, and
    output names come from the checked table, never from the archive."""
    rows = read_table(table)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise CxrError(f"{archive}: not a readable zip ({err}); delete it and run again, or "
                       f"{V7LABS_MANUAL}.") from None
    with zf, atomic_dir(dst) as tmp:
        members = {PurePosixPath(n).name: n for n in zf.namelist()
                   if PurePosixPath(n).parent.as_posix().endswith(V7LABS_MASKS)}
        written = 0
        for rel, mask_id in rows:
            name = members.get(f"{mask_id}.png")
            if name is None:
                continue
            out = tmp / PurePosixPath(rel).with_suffix(".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(name))
            written += 1
        if not written:
            raise CxrError(f"{archive}: none of the {len(rows)} masks of {table} is in it; is "
                           "it the v7labs/covid-19-xray-dataset repository?")
    return written


def mask_path(masks_root: str | Path, image_path: str) -> Path:
    """The mask of raw image `train/NORMAL/x.jpeg`: `<masks_root>/train/NORMAL/x.png`."""
    return Path(masks_root) / Path(image_path).with_suffix(".png")


def read_mask(path: str | Path, width: int, height: int, size: int,
              resize: str = "stretch") -> np.ndarray:
    """bool (size, size): the mask of an image of `width` x `height`, made square and resized
    exactly as `cxr.images.decode_gray` makes the image. A mask of another shape (the shared
    masks are 224 x 224, stretched like their images) is first brought back to the image's
    own shape, so `pad` and `crop` place it where they place the pixels."""
    try:
        with Image.open(path) as img:
            mask = img.convert("L")
    except OSError as err:
        raise CxrError(f"{path}: not a readable mask image ({err}).") from None
    if mask.size != (width, height):
        mask = mask.resize((width, height), Image.Resampling.NEAREST)
    mask = square(mask.point(lambda v: 255 if v >= 128 else 0), resize, fill=0)
    arr = np.asarray(mask.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return arr >= 128


def reference_masks(rows: list[dict], masks_root: str | Path, size: int,
                    resize: str = "stretch") -> tuple[np.ndarray, np.ndarray]:
    """(masks (N, size, size) bool, has_mask (N,) bool) for manifest rows; an image without a
    mask file gets an empty mask and has_mask False."""
    masks = np.zeros((len(rows), size, size), dtype=bool)
    has = np.zeros(len(rows), dtype=bool)
    for i, r in enumerate(rows):
        path = mask_path(masks_root, r["path"])
        if path.is_file():
            masks[i] = read_mask(path, r["width"], r["height"], size, resize)
            has[i] = True
    return masks, has
