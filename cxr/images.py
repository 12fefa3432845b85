"""Decode any JPEG/PNG the dataset may hold into an 8-bit grayscale array."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTS = (".jpeg", ".jpg", ".png")
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


def decode_gray(source: str | Path | bytes, size: int | None = None) -> np.ndarray:
    """Fully decode `source` (a path or the file's bytes) to a uint8 (H, W) array.

    With `size`, resize to size x size; JPEGs are first decoded at a reduced DCT scale
    (`Image.draft`), which is several times faster on full-resolution X-rays.
    """
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
            if size is not None and gray.size != (size, size):
                gray = gray.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ImageError("not an image (unidentified format)") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"corrupt or truncated image: {err}") from None
