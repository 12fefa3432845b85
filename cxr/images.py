"""Decode any JPEG/PNG the dataset may hold into an 8-bit grayscale square, and read the
acquisition record (size, shape, colour mode) of a file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

IMAGE_EXTS = (".jpeg", ".jpg", ".png")
RESIZE_MODES = ("stretch", "pad", "crop")
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000  # X-rays are large, but not this large


class ImageError(ValueError):
    """The file is not a decodable image; the message is the reason shown in reports."""


def _to_gray(img: Image.Image) -> Image.Image:
    if img.mode == "L":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float images: stretch their own range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode in ("RGB", "CMYK", "YCbCr"):
        return img.convert("L")
    return img.convert("RGBA").convert("L")  # P, PA, LA, RGBA, 1, ...


def square(img: Image.Image, mode: str, fill: int | None = None) -> Image.Image:
    """`pad`: letterbox to a square filled with `fill` (default: the image's mean grey);
    `crop`: the centred square; `stretch`: unchanged (the resize then distorts it)."""
    w, h = img.size
    if mode == "stretch" or w == h:
        return img
    side = max(w, h) if mode == "pad" else min(w, h)
    if mode == "crop":
        left, top = (w - side) // 2, (h - side) // 2
        return img.crop((left, top, left + side, top + side))
    fill = round(ImageStat.Stat(img).mean[0]) if fill is None else fill
    out = Image.new("L", (side, side), fill)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def check_preprocess(resize: str, lowpass: float) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"prepare.resize={resize!r}: use one of {', '.join(RESIZE_MODES)}.")
    if lowpass < 0:
        raise ValueError(f"prepare.lowpass={lowpass}: a Gaussian sigma in output pixels, >= 0.")


def decode_gray(source: str | Path | bytes, size: int | None = None, resize: str = "stretch",
                lowpass: float = 0.0, equalize: bool = False) -> np.ndarray:
    """Fully decode `source` (a path or the file's bytes) to a uint8 (H, W) array.

    With `size`: made square by `resize` (stretch | pad | crop), resized to size x size, then
    blurred by a Gaussian of sigma `lowpass` output pixels, then, with `equalize`, given a flat
    grey-level histogram (PIL's `ImageOps.equalize`). The blur is the same for every file
    whatever its resolution and JPEG quality, so it evens out the fine texture in which those
    differ; equalisation evens out exposure and contrast, which differ between devices and
    sites. JPEGs are first decoded at a reduced DCT scale (`Image.draft`), several times
    faster on full-resolution X-rays.
    """
    check_preprocess(resize, lowpass)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data:
        raise ImageError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("JPEG", "PNG", "MPO"):
                raise ImageError(f"unsupported format {img.format}")
            if size is not None and img.format in ("JPEG", "MPO"):
                img.draft("L", (size, size))
            img.load()
            gray = _to_gray(img)
            if size is not None:
                gray = square(gray, resize)
                if gray.size != (size, size):
                    gray = gray.resize((size, size), Image.Resampling.BILINEAR)
                if lowpass > 0:
                    gray = gray.filter(ImageFilter.GaussianBlur(lowpass))
                if equalize:
                    gray = ImageOps.equalize(gray)
            return np.asarray(gray, dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ImageError("not an image (unidentified format)") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"corrupt or truncated image: {err}") from None


BITS = {"1": 1, "L": 8, "P": 8, "LA": 8, "RGB": 8, "RGBA": 8, "CMYK": 8, "YCbCr": 8,
        "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def acquisition(data: bytes) -> dict:
    """How a file was saved, from its bytes (header only, no decode): width, height,
    width/height, bytes, PIL colour mode and bits per channel."""
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        return {"width": w, "height": h, "aspect": round(w / h, 4), "file_size": len(data),
                "color_mode": img.mode, "bit_depth": BITS.get(img.mode, 8)}
