"""Classify chest X-ray images with a trained checkpoint.

    cxr-predict --model models/resnet34.pt PATH [PATH ...] [--json]

PATHs are image files or folders (searched recursively for .jpeg/.jpg/.png), decoded as
`prepare` decoded the training images (the checkpoint records prepare.resize, lowpass and
equalize) and, for a lung-region model (prepare.roi), segmented by the U-Net its checkpoint
carries and cut to the lungs as in training. For each image:
the pneumonia probability, the label at the model's validation-fitted threshold and input-quality
flags. The threshold, and whether scores average in the mirror image, come from
<checkpoint>.threshold.json beside it (written by `evaluate`), so predict scores exactly as the
threshold was fitted; without that file: 0.5 and no flip, with a warning. Exit code 0
whatever the images hold; 2 for usage errors (no model, no paths).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxr import CLASSES, CxrError
from cxr.images import IMAGE_EXTS, ImageError, decode_gray
from cxr.models import load_checkpoint, threshold_path
from cxr.prepared import DEFAULT_PREPROCESS
from cxr.resize import resize
from cxr.roi import apply_roi, roi_of
from cxr.train import predict_proba, select_device
from cxr.unet import build_segmenter, segment_images


def find_images(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        elif path.exists():
            found.append(path)
        else:
            raise CxrError(f"{path}: no such file or folder.")
    return found


def quality_flags(data: bytes, min_size: int, max_aspect: float,
                  max_color: float) -> list[str]:
    """Why an image may be a poor input: too small, extreme aspect ratio, not grayscale-like."""
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        flags = []
        if min(w, h) < min_size:
            flags.append(f"small ({w}x{h} < {min_size} px)")
        if max(w, h) / min(w, h) > max_aspect:
            flags.append(f"aspect ratio {max(w, h) / min(w, h):.1f} > {max_aspect}")
        if img.mode in ("RGB", "RGBA", "CMYK", "P"):
            rgb = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.float32)
            spread = float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean())
            if spread > max_color:
                flags.append(f"colour image (channel spread {spread:.1f})")
    return flags


def predict(model_path: Path, paths: list[Path], min_size: int = 200, max_aspect: float = 2.0,
            max_color: float = 8.0, device: str = "auto") -> list[dict]:
    model, ckpt = load_checkpoint(model_path)
    threshold_file = threshold_path(model_path)
    fitted = {"threshold": 0.5, "tta": False}
    if threshold_file.is_file():
        fitted = json.loads(threshold_file.read_text())
    else:
        print(f"warning: {threshold_file} not found: threshold 0.5, no test-time flip; run "
              "`dvc repro` to fit them on validation.", file=sys.stderr)
    threshold, tta = fitted["threshold"], bool(fitted.get("tta", False))
    cache_size = ckpt.get("cache_size", ckpt["image_size"])
    pre = DEFAULT_PREPROCESS | ckpt.get("preprocess", {})  # as `prepare` made the pixels
    rows, decoded, arrays = [], [], []
    for path in find_images(paths):
        row = {"path": str(path), "probability": None, "label": None, "threshold": threshold,
               "tta": tta}
        try:
            data = path.read_bytes()
            arrays.append(decode_gray(data, cache_size, pre["resize"], pre["lowpass"],
                                      pre["equalize"]))
            row["flags"] = quality_flags(data, min_size, max_aspect, max_color)
            decoded.append(row)
        except (ImageError, OSError) as err:
            row["flags"] = [f"cannot be decoded: {err}"]
        rows.append(row)
    if arrays:
        dev = select_device(device)
        images = torch.from_numpy(np.stack(arrays))
        roi, margin = roi_of(ckpt)
        if roi != "full":
            segmenter, seg_size = build_segmenter(ckpt["segmenter"])
            lungs = segment_images(segmenter.to(dev), seg_size, images, dev)
            images, _ = apply_roi(images, lungs, roi, margin)
        images = resize(images, ckpt["image_size"])
        probs = predict_proba(model.to(dev), images, dev, tta)
        for row, p in zip(decoded, probs, strict=True):
            row["probability"] = float(p)  # exactly as in eval/<model>/predictions.csv
            row["label"] = CLASSES[int(p >= threshold)]
    return rows


def table(rows: list[dict]) -> str:
    width = max([len(r["path"]) for r in rows] + [4])
    lines = [f"{'path':{width}}  p(pneumonia)  label      flags"]
    for r in rows:
        p = "-" if r["probability"] is None else f"{r['probability']:.6f}"
        lines.append(f"{r['path']:{width}}  {p:>12}  {r['label'] or '-':9}  "
                     f"{'; '.join(r['flags']) or 'ok'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True,
                        help="checkpoint, e.g. models/cnn11.pt")
    parser.add_argument("paths", type=Path, nargs="+", help="image files or folders")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--min-size", type=int, default=200, help="flag images smaller than this")
    parser.add_argument("--max-aspect", type=float, default=2.0,
                        help="flag images whose long/short side ratio exceeds this")
    parser.add_argument("--max-color", type=float, default=8.0,
                        help="flag colour images whose mean channel spread exceeds this (0-255)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args(argv)
    try:
        rows = predict(args.model, args.paths, args.min_size, args.max_aspect, args.max_color,
                       args.device)
    except CxrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
