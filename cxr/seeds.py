"""Mean and standard deviation of a metric across seeds, from `dvc exp show --json`.

    dvc exp run --queue -S seed=1,2 && dvc queue start   # then, once they finished:
    python -m cxr.seeds [--metric test.accuracy] [--from exp_show.json]

Each commit shown and each of its finished experiments counts once (the workspace, and queued,
running or failed experiments, are skipped). `seed` is the training seed: data and split keep
theirs, so the spread is training's alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from cxr import MODELS, CxrError
from cxr.io import run_dvc


def finished(experiment: dict) -> bool:
    """Queued, running and failed experiments show their parent's metrics, or none."""
    executor = experiment.get("executor")
    return executor is None or executor.get("state") == "success"


def runs(exp_show: list[dict]) -> list[dict]:
    """One {name, seed, metrics} per commit and per finished experiment in `dvc exp show
    --json`."""
    out = []
    for commit in exp_show:
        if commit.get("rev") == "workspace":
            continue
        nodes = [commit] + [r for e in commit.get("experiments") or [] if finished(e)
                            for r in e["revs"]]
        for node in nodes:
            data = node.get("data") or {}
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            metrics = {Path(p).stem: (v or {}).get("data", {})
                       for p, v in data.get("metrics", {}).items() if p.startswith("metrics/")}
            out.append({"name": node.get("name") or node["rev"][:7],
                        "seed": params.get("seed"), "metrics": metrics})
    return out


def lookup(metrics: dict, key: str):
    for part in key.split("."):
        if not isinstance(metrics, dict) or part not in metrics:
            return None
        metrics = metrics[part]
    return metrics


def aggregate(all_runs: list[dict], metric: str) -> str:
    """A Markdown table: per model, the runs, their seeds, and mean and sd of `metric`."""
    rows = [{"model": model, "seed": r["seed"], "value": lookup(r["metrics"].get(model, {}),
                                                                 metric)}
            for model in MODELS for r in all_runs]
    df = pd.DataFrame(rows, columns=["model", "seed", "value"])
    df = df.assign(value=pd.to_numeric(df["value"], errors="coerce")).dropna(subset=["value"])
    lines = [f"| model | runs | seeds | {metric} mean | sd |", "|---|---|---|---|---|"]
    for model, group in df.groupby("model", sort=False):
        sd = group["value"].std() if len(group) > 1 else 0.0
        seeds = ", ".join(str(s) for s in group["seed"])
        lines.append(f"| {model} | {len(group)} | {seeds} | {group['value'].mean():.4f} | "
                     f"{sd:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr.seeds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="test.accuracy")
    parser.add_argument("--from", dest="source", type=Path,
                        help="a saved `dvc exp show --json`; default: run it")
    args = parser.parse_args(argv)
    try:
        text = args.source.read_text() if args.source else run_dvc("exp", "show", "--json")
    except CxrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(aggregate(runs(json.loads(text)), args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
