"""Mean and standard deviation of a metric across seeds, from `dvc exp show --json`.

    dvc exp run --queue -S seed=1,2,3 && dvc queue start   # then, once they finished:
    python -m cxr.seeds [--metric test.accuracy] [--from exp_show.json]

Each commit shown and each of its experiments counts once (the workspace is skipped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from cxr import MODELS, CxrError
from cxr.io import run_dvc


def runs(exp_show: list[dict]) -> list[dict]:
    """One {name, seed, metrics} per commit and per experiment in `dvc exp show --json`."""
    out = []
    for commit in exp_show:
        if commit.get("rev") == "workspace":
            continue
        nodes = [commit] + [r for e in commit.get("experiments") or [] for r in e["revs"]]
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
    lines = [f"| model | runs | seeds | {metric} mean | sd |", "|---|---|---|---|---|"]
    for model in MODELS:
        values = [(r["seed"], lookup(r["metrics"].get(model, {}), metric)) for r in all_runs]
        values = [(s, v) for s, v in values if isinstance(v, int | float)]
        if not values:
            continue
        numbers = [v for _, v in values]
        sd = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
        seeds = ", ".join(str(s) for s, _ in values)
        lines.append(f"| {model} | {len(numbers)} | {seeds} | {statistics.mean(numbers):.4f} | "
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
