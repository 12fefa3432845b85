"""Pull-request comment and metric gate, from `dvc metrics diff` against a base revision.

    python -m cxr.pr comment --base main [--out comment.md] [--plots dvc_plots]
    python -m cxr.pr gate --base main [--metric test.roc_auc] [--model best] [--tolerance 0.01]

The gate exits 1 when the chosen metric of the chosen model (by default: the model with the
best value on the base revision) drops by more than the tolerance; its defaults come from the
`gate` section of params.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cxr import MODELS, CxrError
from cxr.io import run_dvc as dvc

ROC_FILES = [f"eval/{m}/plots/sklearn/roc.json" for m in MODELS]


def metric_values(base: str, metric: str) -> dict[str, dict]:
    """{model: {"old": .., "new": ..}} for `metric` in metrics/<model>.json."""
    diff = json.loads(dvc("metrics", "diff", base, "--all", "--json") or "{}")
    out = {}
    for path, values in diff.items():
        name = Path(path).stem
        if Path(path).parent.name == "metrics" and metric in values:
            out[name] = values[metric]
    if not out:
        raise CxrError(f"no metrics/<model>.json holds `{metric}` in the workspace or {base}.")
    return out


def gate(base: str, metric: str, model: str, tolerance: float) -> tuple[bool, str]:
    values = metric_values(base, metric)
    if model == "best":
        with_old = {k: v for k, v in values.items() if v.get("old") is not None}
        if not with_old:
            return True, f"gate: {base} has no `{metric}` yet; nothing to compare."
        model = max(with_old, key=lambda k: with_old[k]["old"])
    if model not in values:
        raise CxrError(f"gate: no metrics/{model}.json with `{metric}`.")
    old, new = values[model].get("old"), values[model].get("new")
    if old is None or new is None:
        return True, f"gate: `{metric}` of {model} is missing on one side; nothing to compare."
    drop = old - new
    ok = drop <= tolerance
    verdict = "passes" if ok else "FAILS"
    return ok, (f"gate {verdict}: {metric} of {model} {old:.4f} -> {new:.4f} "
                f"(change {-drop:+.4f}, tolerance {tolerance})")


def comment(base: str, plots: str | None, gate_line: str) -> str:
    parts = [f"## Pipeline results against `{base}`", "", gate_line, "",
             "### Metrics", "", dvc("metrics", "diff", base, "--md") or "No metric changed.",
             "", "### Params", "", dvc("params", "diff", base, "--md") or "No param changed."]
    if plots:
        targets = [f for f in ROC_FILES if Path(f).is_file()]
        dvc("plots", "diff", base, "--targets", *targets, "-o", plots)
        parts += ["", "### ROC curves", "", f"Both revisions' ROC curves, overlaid: "
                  f"`{plots}/index.html` (attached to this run as an artifact)."]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr.pr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("comment", "gate"))
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--out", help="comment: write the markdown here (default: stdout)")
    parser.add_argument("--plots", help="comment: render `dvc plots diff` of ROC curves here")
    parser.add_argument("--metric", help="gate: key in metrics/<model>.json")
    parser.add_argument("--model", help="gate: model name, or best")
    parser.add_argument("--tolerance", type=float, help="gate: largest allowed drop")
    args = parser.parse_args(argv)
    try:
        params = Path("params.yaml")
        cfg = (yaml.safe_load(params.read_text()) or {}).get("gate", {}) if params.is_file() else {}
        metric = args.metric or cfg.get("metric", "test.roc_auc")
        model = args.model or cfg.get("model", "best")
        tolerance = args.tolerance if args.tolerance is not None else cfg.get("tolerance", 0.01)
        ok, line = gate(args.base, metric, model, tolerance)
        if args.command == "comment":
            text = comment(args.base, args.plots, line)
            if args.out:
                Path(args.out).write_text(text)
            else:
                print(text)
            return 0
        print(line)
        return 0 if ok else 1
    except CxrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
