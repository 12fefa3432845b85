"""Train one model under recipe variants and print validation metrics (to choose by) and test
metrics (for the record, never to choose by): one JSON line per run.

    python benchmarks/recipes.py cnn11 "" "cnn11.epochs=20" "cnn11.width=32" --seeds 42 1
    python benchmarks/recipes.py resnet34 "finetune.unfrozen.epochs=12" --data data/prepared

A variant is a space-separated list of params.yaml overrides (`-S` syntax); "" is params.yaml
as it is. `--data` is a folder written by the `prepare` stage; a variant may use any
`<model>.image_size` up to the size of that cache. The threshold follows `evaluate` (fitted on
validation). This is how the "what was tried" tables in the README were made.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from sklearn.metrics import log_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cxr.data import load_split  # noqa: E402
from cxr.evaluate import score_splits  # noqa: E402
from cxr.io import run_stage  # noqa: E402
from cxr.metrics import binary_metrics  # noqa: E402
from cxr.params import load_params, set_param, validate  # noqa: E402
from cxr.trainers import TRAINERS, train_model  # noqa: E402


def run(model: str, variant: str, seed: int, base: dict, data: Path) -> dict:
    params = copy.deepcopy(base)
    params["seed"] = seed
    for assignment in variant.split():
        set_param(params, assignment)
    validate(params)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            train_model(model, params, data, f"{tmp}/model.pt", f"{tmp}/live")
        seconds = time.perf_counter() - start
        s = score_splits(params, data, f"{tmp}/model.pt")
    y_val, y_test = s.val.labels.numpy(), s.test.labels.numpy()
    keys = ("accuracy", "roc_auc")
    return {"model": model, "variant": variant, "seed": seed, "train_s": round(seconds, 1),
            "val_roc_auc": round(binary_metrics(y_val, s.p_val, s.threshold, keys)["roc_auc"], 4),
            "val_log_loss": round(log_loss(y_val, s.p_val, labels=[0, 1]), 4),
            "threshold": round(s.threshold, 4), "tta": s.tta,
            **{f"test_{k}": round(v, 4)
               for k, v in binary_metrics(y_test, s.p_test, s.threshold, keys).items()}}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(TRAINERS))
    parser.add_argument("variants", nargs="*", default=[""],
                        help="overrides, e.g. \"cnn11.lr=0.001\"")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    base = load_params(args.params)
    base["prepare"]["image_size"] = load_split(args.data, "val").cache_size  # variants may use it
    results = []
    for variant in args.variants:
        for seed in args.seeds:
            result = run(args.model, variant, seed, base, args.data)
            line = json.dumps(result)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(line + "\n")
            results.append(result)
    return results


if __name__ == "__main__":
    run_stage(main)
