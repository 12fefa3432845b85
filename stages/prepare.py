"""DVC stage `prepare`: train/val split by patient and duplicate groups, and the uint8 cache."""

import argparse
from pathlib import Path

from cxr.atomic import atomic_dir, write_json
from cxr.commands import run_stage
from cxr.params import load_params
from cxr.prepared import cache_side, write_cache
from cxr.split import assign_val, scan, split_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, help="Kaggle-layout folder from `acquire`")
    parser.add_argument("--out", required=True, help="folder for {split}.npy and manifest.csv")
    parser.add_argument("--report", required=True, help="split report (JSON)")
    args = parser.parse_args()
    params = load_params()
    cfg = params["prepare"]
    records, unknown = scan(args.raw)
    assign_val(records, cfg["val_fraction"], cfg["seed"])
    report = split_report(records, unknown, cfg["val_fraction"])
    if unknown:
        print(f"warning: {unknown} file names carry no patient id; each is its own patient")
    side = cache_side(records, cfg["image_size"])
    report["cache"] = {"image_size": cfg["image_size"], "side": side}
    if side < cfg["image_size"]:
        print(f"prepare: cache at {side} px, the smallest raw side (prepare.image_size "
              f"{cfg['image_size']}; images are never upsampled)")
    with atomic_dir(args.out) as tmp:
        write_cache(records, Path(args.raw), tmp, side, cfg["workers"], cfg["resize"],
                    cfg["lowpass"], cfg["equalize"])
    write_json(args.report, report)


if __name__ == "__main__":
    run_stage(main)
