"""DVC stage `acquire`: the validated raw dataset from `data.source`, its lung masks from
`masks.source`."""

import argparse

from cxr.acquire import materialise
from cxr.atomic import write_json
from cxr.commands import run_stage
from cxr.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="Kaggle-layout folder to write")
    parser.add_argument("--masks", required=True, help="folder for the lung masks")
    parser.add_argument("--report", required=True, help="ingest report (JSON)")
    args = parser.parse_args()
    params = load_params()
    report = materialise(params["data"], args.out, params["prepare"]["workers"], params["masks"],
                         args.masks)
    write_json(args.report, report)


if __name__ == "__main__":
    run_stage(main)
