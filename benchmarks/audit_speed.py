"""Wall time of the audit (region ablation and Grad-CAM) of every model, as `evaluate` runs it.

    python benchmarks/audit_speed.py [--data data/prepared] [--models models] [--device auto]

Needs a finished `dvc repro` (the cache, the checkpoints and their threshold files). Prints the
processor (or GPU), then seconds per model and in total; the test scores are computed first
and not timed, as evaluate has them already.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from cxr import MODELS
from cxr.audit import audit_model
from cxr.commands import processor
from cxr.inputs import load_split
from cxr.models import load_checkpoint, threshold_path
from cxr.params import load_params
from cxr.train import predict_proba, select_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--models", default="models")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cfg = load_params()["audit"]
    device = select_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else processor()
    print(f"device {device.type}: {where}; torch threads {torch.get_num_threads()}")
    total = 0.0
    for name in MODELS:
        path = Path(args.models) / f"{name}.pt"
        model, ckpt = load_checkpoint(path)
        model.to(device)
        fitted = json.loads(threshold_path(path).read_text())
        test = load_split(args.data, "test", ckpt["image_size"])
        p_test = predict_proba(model, test.images, device, fitted["tta"])
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = audit_model(model, test, p_test, fitted["threshold"], fitted["tta"], device,
                                 cfg, name, tmp)
            seconds = time.perf_counter() - started
        total += seconds
        print(f"{name}: {seconds:.1f} s ({len(test)} test images at {ckpt['image_size']} px; "
              f"centre removed ROC AUC {result['centre_removed']['roc_auc']:.3f})", flush=True)
    print(f"all four: {total:.1f} s")


if __name__ == "__main__":
    main()
