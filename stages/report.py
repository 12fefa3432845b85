"""DVC stage `report`: reports/summary.md (the four models beside the article, with figures) and
reports/model_card.md."""

import argparse
import json
import shutil
from pathlib import Path

from cxr import MODELS
from cxr.atomic import atomic_dir, write_text
from cxr.card import model_card
from cxr.commands import run_stage
from cxr.figures import write_figures
from cxr.params import load_params
from cxr.report import load_metrics, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, help="folder of per-model metrics JSON")
    parser.add_argument("--split", required=True, help="split report from `prepare` (JSON)")
    parser.add_argument("--shortcuts", required=True, help="acquisition baseline (JSON)")
    parser.add_argument("--eval", required=True, help="folder of per-model predictions")
    parser.add_argument("--live", required=True, help="folder of per-model dvclive logs")
    parser.add_argument("--out", required=True, help="report folder")
    args = parser.parse_args()
    params = load_params()
    out = Path(args.out)
    metrics = load_metrics(Path(args.metrics))
    with atomic_dir(out / "figures") as tmp:
        figures = write_figures(metrics, Path(args.eval), Path(args.live), tmp)
        for name in MODELS:
            for grid in ("gradcam", "gradcam_external"):
                shutil.copyfile(Path(args.eval) / name / f"{grid}.png", tmp / f"{grid}_{name}.png")
    shortcuts = json.loads(Path(args.shortcuts).read_text())
    write_text(out / "summary.md", summary(metrics, Path(args.eval), params["evaluate"]["n_boot"],
                                           params["seed"], figures, shortcuts))
    split = json.loads(Path(args.split).read_text())
    write_text(out / "model_card.md", model_card(metrics, split, params))


if __name__ == "__main__":
    run_stage(main)
