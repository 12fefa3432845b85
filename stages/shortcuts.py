"""DVC stage `shortcuts`: how far the acquisition alone (file metadata, pixel texture) separates
the classes, fitted on train and scored on val and test; and on the external images, within
that set."""

import argparse
from pathlib import Path

import numpy as np

from cxr.atomic import write_json
from cxr.commands import run_stage
from cxr.external import read_external
from cxr.metrics import rounded
from cxr.prepared import SPLITS, read_manifest
from cxr.shortcuts import external_acquisition, shortcut_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="folder written by `prepare`")
    parser.add_argument("--external", required=True, help="external cache from `external`")
    parser.add_argument("--out", required=True, help="report to write (JSON)")
    args = parser.parse_args()
    manifest = read_manifest(args.data)
    rows = {s: [r for r in manifest if r["split"] == s] for s in SPLITS}
    images = {s: np.load(Path(args.data) / f"{s}.npy", mmap_mode="r") for s in SPLITS}
    external_images, external_rows = read_external(args.external)
    report = rounded({**shortcut_report(rows, images),
                      "external": external_acquisition(external_rows, external_images)})
    write_json(args.out, report)
    print(f"shortcuts: metadata-only ROC AUC test {report['metadata']['test_roc_auc']}, "
          f"Laplacian energy {report['laplacian']['test_roc_auc']}; external (file size, view, "
          f"cross-validated) {report['external']['metadata_roc_auc_cv']}")


if __name__ == "__main__":
    run_stage(main)
