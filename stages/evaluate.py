"""DVC stage `evaluate@<model>`: test metrics at the validation-fitted threshold, and plots."""

import argparse

from cxr.commands import run_stage
from cxr.evaluate import evaluate_model
from cxr.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="folder written by `prepare`")
    parser.add_argument("--model", required=True, help="checkpoint to evaluate")
    parser.add_argument("--plots", required=True, help="folder for plot data and predictions")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--masks", required=True, help="lung masks written by `segment`")
    parser.add_argument("--external", required=True, help="external cache from `external`")
    args = parser.parse_args()
    evaluate_model(load_params(), args.data, args.model, args.plots, args.metrics, args.masks,
                   args.external)


if __name__ == "__main__":
    run_stage(main)
