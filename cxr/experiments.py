"""Compare DVC experiments: recipe variants and seeds, from `dvc exp show --json`.

    dvc exp run --queue -S cnn11.epochs=20 -S 'seed=42,1,2'   # a variant, three seeds
    dvc exp run --queue -S 'seed=1,2'                         # the default's other seeds
    dvc queue start                                           # then, once they finished:
    cxr-experiments [--model cnn11] [--metric val_in_sample.log_loss ...] [--from exp.json]

One Markdown table per model. A variant is what an experiment's params.yaml changes against its
commit's, the training `seed` aside; its runs are the commit (when it is that variant) and its
finished experiments, one per seed. Columns: runs, seeds, and per metric the mean and (min-max).
Choose on the validation columns (in-sample: the threshold was fitted there; the log loss is
threshold-free); the test columns are for the record. Queued, running and failed experiments,
and the workspace, are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from cxr import MODELS, CxrError
from cxr.commands import run_dvc

METRICS = ("val_in_sample.roc_auc", "val_in_sample.log_loss", "test.accuracy", "test.roc_auc")


def finished(experiment: dict) -> bool:
    """Queued, running and failed experiments show their parent's metrics, or none."""
    executor = experiment.get("executor")
    return executor is None or executor.get("state") == "success"


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def runs(exp_show: list[dict]) -> list[dict]:
    """One {name, variant, seed, metrics} per commit and per finished experiment."""
    out = []
    for commit in exp_show:
        if commit.get("rev") == "workspace":
            continue
        nodes = [commit] + [r for e in commit.get("experiments") or [] if finished(e)
                            for r in e["revs"]]
        base = None
        for node in nodes:
            data = node.get("data") or {}
            params = flatten(data.get("params", {}).get("params.yaml", {}).get("data", {}))
            base = params if base is None else base
            changed = sorted(f"{k}={params.get(k)}" for k in set(params) | set(base)
                             if k != "seed" and params.get(k) != base.get(k))
            metrics = {Path(p).stem: flatten((v or {}).get("data", {}))
                       for p, v in data.get("metrics", {}).items() if p.startswith("metrics/")}
            out.append({"name": node.get("name") or node["rev"][:7],
                        "variant": " ".join(changed) or "(params.yaml)",
                        "seed": params.get("seed"), "metrics": metrics})
    return out


def summary(all_runs: list[dict], models: tuple[str, ...] = MODELS,
            metrics: tuple[str, ...] = METRICS) -> str:
    """Markdown: per model, one row per variant (params.yaml first)."""
    rows = [{"model": m, "variant": r["variant"], "seed": r["seed"],
             **{k: r["metrics"].get(m, {}).get(k) for k in metrics}}
            for m in models for r in all_runs]
    df = pd.DataFrame(rows, columns=["model", "variant", "seed", *metrics])
    df[list(metrics)] = df[list(metrics)].apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=list(metrics), how="all")
    if df.empty:
        raise CxrError("no finished run holds these metrics; run `dvc exp show` to check.")
    blocks = []
    for model, table in df.groupby("model", sort=False):
        lines = [f"### {model}", "", "| variant | runs | seeds | " + " | ".join(metrics) + " |",
                 "|---|---|---|" + "---|" * len(metrics)]
        order = sorted(table["variant"].unique(), key=lambda v: (v != "(params.yaml)", v))
        for variant in order:
            group = table[table["variant"] == variant]
            cells = []
            for key in metrics:
                values = group[key].dropna()
                cells.append("–" if values.empty else f"{values.mean():.4f} "
                             f"({values.min():.4f}–{values.max():.4f})")
            seeds = ", ".join(str(s) for s in group["seed"])
            lines.append(f"| {variant} | {len(group)} | {seeds} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr-experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--metric", nargs="+", default=list(METRICS),
                        help="keys of metrics/<model>.json")
    parser.add_argument("--from", dest="source", type=Path,
                        help="a saved `dvc exp show --json`; default: run it")
    args = parser.parse_args(argv)
    try:
        text = args.source.read_text() if args.source else run_dvc("exp", "show", "--json")
        print(summary(runs(json.loads(text)), tuple(args.model), tuple(args.metric)), end="")
    except CxrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
