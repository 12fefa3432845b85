"""DVC stage `report`: reports/summary.md comparing the four models with the article."""

import argparse
from pathlib import Path

from cxr.io import run_stage, write_text
from cxr.params import load_params
from cxr.report import summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, help="folder of per-model metrics JSON")
    parser.add_argument("--eval", required=True, help="folder of per-model predictions")
    parser.add_argument("--out", required=True, help="markdown file to write")
    args = parser.parse_args()
    params = load_params()
    write_text(args.out, summary(Path(args.metrics), Path(args.eval),
                                 params["evaluate"]["n_boot"], params["seed"]))


if __name__ == "__main__":
    run_stage(main)
