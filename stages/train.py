"""DVC stages `train_baseline`, `train_balanced`, `train_cnn11`, `finetune_resnet34`."""

import argparse

from cxr.commands import run_stage
from cxr.params import load_params
from cxr.recipes import ARCHS, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=sorted(ARCHS))
    parser.add_argument("--data", required=True, help="folder written by `prepare`")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--live", required=True, help="dvclive folder")
    parser.add_argument("--lungs", required=True, help="lung masks written by `segment`")
    parser.add_argument("--segmenter", required=True, help="the segmenter that wrote them")
    args = parser.parse_args()
    train_model(args.model, load_params(), args.data, args.out, args.live, args.lungs,
                args.segmenter)


if __name__ == "__main__":
    run_stage(main)
