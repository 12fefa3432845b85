"""DVC stage `segment`: a lung U-Net trained on the train split's masks; masks for every image."""

import argparse

from cxr.atomic import write_json
from cxr.commands import run_stage
from cxr.params import load_params
from cxr.segment import segment_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="folder written by `prepare`")
    parser.add_argument("--masks", required=True, help="lung masks from `acquire`")
    parser.add_argument("--external", required=True, help="external cache from `external`")
    parser.add_argument("--model", required=True, help="segmenter checkpoint to write")
    parser.add_argument("--out", required=True, help="folder for the predicted masks")
    parser.add_argument("--metrics", required=True, help="Dice report (JSON)")
    args = parser.parse_args()
    report = segment_all(load_params(), args.data, args.masks, args.external, args.model,
                         args.out)
    write_json(args.metrics, report)


if __name__ == "__main__":
    run_stage(main)
