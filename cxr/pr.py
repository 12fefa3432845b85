"""Pull-request loop: reproduce base and head on one machine, then comment and gate.

    cxr-pr reproduce --base REV [--pull]  # base in a git worktree, then head here
    cxr-pr comment --base REV [--out comment.md] [--plots DIR] [--image-url URL]
    cxr-pr gate --base REV [--metric M] [--model best] [--tolerance T] [--direction lower]

Results are identical only on one kind of machine (README, "Reproducibility"), so a diff of a
PR's results against results committed from another machine measures hardware as well as the
change. `reproduce` runs `dvc repro` for REV in a temporary worktree and commits what it
produced to the local ref `refs/pr/base` (never pushed), then runs `dvc repro` here; `comment`
and `gate` with `--base refs/pr/base` then compare two runs of one machine. Against any other
revision they compare with its committed results, and say so.

The comment holds `dvc metrics diff`, `dvc params diff` and, with `--plots`, the plots of
dvc.yaml's definitions (`ROC (test)`, `Precision-recall (test)`) for both revisions as PNGs,
from `dvc plots diff --json`. The gate exits 1 when the chosen metric of the chosen model (by
default: the best on the base) worsens by more than the tolerance, or is missing or not finite
on either side. Its settings are params.yaml `gate` as committed in the base revision, never
the PR's own; flags override them for local use. The default gates on a validation metric
(the test set is for the record, not a merge criterion).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from cxr import MODELS, CxrError  # noqa: E402
from cxr.commands import processor  # noqa: E402
from cxr.commands import run_dvc as dvc  # noqa: E402
from cxr.figures import save  # noqa: E402

BASE_REF = "refs/pr/base"
PROVENANCE = ".dvc/tmp/pr-base.json"  # what `reproduce` did, for `comment` (not versioned)
PLOTS = {"ROC (test)": "roc.png", "Precision-recall (test)": "precision_recall.png"}
HEADLINE = {"test.accuracy": "test accuracy", "test.roc_auc": "test ROC AUC",
            "test.sensitivity": "sensitivity", "test.specificity": "specificity",
            "val_in_sample.log_loss": "val log loss",
            "audit.centre_removed.roc_auc": "ROC AUC, lungs removed",
            "audit.border_only.roc_auc": "ROC AUC, border only"}


def git(*args: str, cwd: str | Path = ".") -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CxrError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def raw_folder(repo: str | Path = ".") -> str:
    """The raw dataset's path, from the `vars` of dvc.yaml (a path, unlike a stage name,
    that both sides of a PR share)."""
    pipeline = yaml.safe_load((Path(repo) / "dvc.yaml").read_text()) or {}
    for entry in pipeline.get("vars", []):
        if isinstance(entry, dict) and "raw" in entry:
            return entry["raw"]
    raise CxrError(f"{repo}/dvc.yaml: no `raw` in `vars`; cannot tell what to pull.")


def reproduce(base: str, pull: bool = False) -> dict:
    """`dvc repro` of `base` in a worktree, committed to refs/pr/base; then `dvc repro` here.

    `pull`: first `dvc pull` the raw dataset (dvc.yaml's `raw` folder, from the DVC remote) on
    both sides, for a pipeline whose `data.source` cannot be materialised on the runner.
    Nothing trained is pulled: models and metrics are always made here."""
    sha = git("rev-parse", "--verify", f"{base}^{{commit}}")
    tmp = Path(tempfile.mkdtemp(prefix="cxr-pr-base-"))
    worktree = tmp / "base"
    git("worktree", "add", "--detach", str(worktree), sha)
    try:
        print(f"reproduce: {base} ({sha[:12]}) in {worktree}", flush=True)
        if pull:
            dvc("pull", raw_folder(worktree), cwd=worktree, capture=False)
        dvc("repro", cwd=worktree, capture=False)
        git("add", "-A", cwd=worktree)
        git("-c", "user.name=cxr-pr", "-c", "user.email=cxr-pr@localhost", "commit", "-q",
            "--allow-empty", "-m", f"{base} reproduced on this machine", cwd=worktree)
        git("update-ref", BASE_REF, git("rev-parse", "HEAD", cwd=worktree))
    finally:
        git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(tmp, ignore_errors=True)
    print("reproduce: the workspace (head)", flush=True)
    if pull:
        dvc("pull", raw_folder(), capture=False)
    dvc("repro", capture=False)
    record = {"base": base, "base_sha": sha, "ref": BASE_REF, "processor": processor()}
    Path(PROVENANCE).parent.mkdir(parents=True, exist_ok=True)
    Path(PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def provenance(base: str) -> str:
    """One line saying whether the two sides are like for like."""
    path = Path(PROVENANCE)
    record = json.loads(path.read_text()) if path.is_file() else {}
    if base == BASE_REF and record.get("ref") == BASE_REF:
        return (f"Like for like: `{record['base']}` ({record['base_sha'][:12]}) and this PR were "
                f"both reproduced by `dvc repro` in this run, on {record['processor']}.")
    return (f"Base: the results committed in `{base}`, which may come from another machine; "
            "differences can be hardware as well as the change (`cxr-pr reproduce` "
            "compares like for like).")


def model_metrics(base: str) -> dict[str, dict[str, dict]]:
    """{model: {metric: {"old": .., "new": ..}}} of every metrics/<model>.json, changed or not."""
    diff = json.loads(dvc("metrics", "diff", base, "--all", "--json") or "{}")
    return {Path(path).stem: values for path, values in diff.items()
            if Path(path).parent.name == "metrics"}


def metric_values(diffs: dict[str, dict], base: str, metric: str) -> dict[str, dict]:
    """{model: {"old": .., "new": ..}} for `metric`, from `model_metrics(base)`."""
    out = {name: values[metric] for name, values in diffs.items() if metric in values}
    if not out:
        raise CxrError(f"no metrics/<model>.json holds `{metric}` in the workspace or {base}.")
    return out


DIRECTIONS = ("higher", "lower")
TOLERANCE_SLACK = 1e-9  # metrics are rounded decimals: a drop equal to the tolerance passes


def gate_settings(base: str) -> dict:
    """`gate` of params.yaml as committed in `base`: the revision being protected sets the
    rule, so a PR cannot loosen the gate that judges it."""
    try:
        text = git("show", f"{base}:params.yaml")
    except CxrError as err:
        raise CxrError(f"gate: cannot read params.yaml of {base} ({err}).") from None
    cfg = (yaml.safe_load(text) or {}).get("gate")
    if not isinstance(cfg, dict) or not {"metric", "model", "tolerance"} <= set(cfg):
        raise CxrError(f"gate: params.yaml of {base} has no complete `gate` section "
                       "(metric, model, tolerance, direction).")
    cfg.setdefault("direction", "higher")  # bases from before gate.direction existed
    return cfg


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def gate(diffs: dict[str, dict], base: str, metric: str, model: str, tolerance: float,
         direction: str = "higher") -> tuple[bool, str]:
    """Pass only when both sides have a finite `metric` for the model and it worsened by at
    most `tolerance` in `direction` (higher or lower is better); anything missing fails."""
    if direction not in DIRECTIONS:
        raise CxrError(f"gate: direction must be higher or lower, not {direction!r}.")
    sign = 1 if direction == "higher" else -1
    values = metric_values(diffs, base, metric)
    if model == "best":
        with_old = {k: v["old"] for k, v in values.items() if _finite(v.get("old"))}
        if not with_old:
            return False, f"gate FAILS: {base} has no finite `{metric}` for any model."
        model = max(with_old, key=lambda k: sign * with_old[k])
    if model not in values:
        return False, f"gate FAILS: no metrics/{model}.json with `{metric}` on either side."
    old, new = values[model].get("old"), values[model].get("new")
    if not (_finite(old) and _finite(new)):
        return False, (f"gate FAILS: `{metric}` of {model} is {old!r} on {base} and {new!r} "
                       "in this PR; both must be finite numbers.")
    worsening = sign * (old - new)
    ok = worsening <= tolerance + TOLERANCE_SLACK
    verdict = "passes" if ok else "FAILS"
    return ok, (f"gate {verdict}: {metric} of {model} {old:.4f} -> {new:.4f} "
                f"(change {new - old:+.4f}, {direction} is better, tolerance {tolerance})")


def headline(diffs: dict[str, dict]) -> str:
    """Markdown: per model, the metrics a reviewer reads first, base -> PR (`model_metrics`)."""
    models = [m for m in MODELS if m in diffs] + sorted(set(diffs) - set(MODELS))
    lines = ["| model | " + " | ".join(HEADLINE.values()) + " |",
             "|---|" + "---|" * len(HEADLINE)]
    for model in models:
        cells = []
        for key in HEADLINE:
            value = diffs[model].get(key, {})
            old, new = value.get("old"), value.get("new")
            if old is None and new is None:
                cells.append("–")
            elif old == new or old is None or new is None:
                cells.append(f"{new if new is not None else old:.4f}"
                             + (" (new)" if old is None else " (gone)" if new is None else ""))
            else:
                cells.append(f"{old:.4f} → **{new:.4f}**")
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_data(base: str) -> dict[str, list[dict]]:
    """Rows of each plot definition in PLOTS for both revisions, from `dvc plots diff`: each row
    has the definition's x and y fields, `rev` and the source file."""
    rendered = json.loads(dvc("plots", "diff", base, "--json") or "{}").get("data", {})
    out = {}
    for plot_id in PLOTS:
        rows = [row for item in rendered.get(plot_id, [])
                for row in item.get("content", {}).get("data", {}).get("values", [])]
        if rows:
            out[plot_id] = rows
    return out


def render(plot_id: str, rows: list[dict], definition: dict, path: Path) -> None:
    """One PNG: every model's curve in its own colour, the base dashed and the PR solid."""
    x, y = definition["x"], next(iter(definition["y"].values()))
    fig, ax = plt.subplots(figsize=(5, 4))
    series: dict[tuple[str, str], list[dict]] = {}
    for row in rows:  # filename: the source file less the common prefix, e.g. cnn11/plots/...
        series.setdefault((row["filename"].split("/")[0], row["rev"]), []).append(row)
    names = sorted({model for model, _ in series})
    for (model, rev), points in sorted(series.items()):
        pr = rev == "workspace"
        ax.plot([float(p[x]) for p in points], [float(p[y]) for p in points],
                "-" if pr else "--", color=f"C{names.index(model)}", linewidth=1.2 if pr else 1,
                label=f"{model}: {'PR' if pr else 'base'}")
    ax.set_xlabel(definition.get("x_label") or x)
    ax.set_ylabel(definition.get("y_label") or y)
    ax.set_title(plot_id)
    ax.legend(fontsize=6)
    fig.tight_layout()
    save(fig, path)


def plot_definitions() -> dict[str, dict]:
    plots = (yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("plots", [])
    return {k: v for item in plots if isinstance(item, dict) for k, v in item.items()}


def comment(base: str, diffs: dict[str, dict], plots: str | None, gate_line: str,
            image_url: str | None) -> str:
    parts = [f"## Pipeline results against `{base}`", "", provenance(base), "", gate_line, "",
             "### Params", "", dvc("params", "diff", base, "--md") or "No param changed.", "",
             "### Headline metrics (base → **PR**)", "", headline(diffs), "",
             "<details><summary>Every changed metric (<code>dvc metrics diff</code>)</summary>",
             "", dvc("metrics", "diff", base, "--md") or "No metric changed.", "", "</details>"]
    if plots:
        folder = Path(plots)
        folder.mkdir(parents=True, exist_ok=True)
        data, definitions = plot_data(base), plot_definitions()
        (folder / "plots.json").write_text(json.dumps(data, indent=1) + "\n")
        parts += ["", "### Plots (base dashed, this PR solid)", ""]
        for plot_id, rows in data.items():
            render(plot_id, rows, definitions[plot_id], folder / PLOTS[plot_id])
            parts.append(f"![{plot_id}]({(image_url or plots).rstrip('/')}/{PLOTS[plot_id]})")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr-pr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("reproduce", "comment", "gate"))
    parser.add_argument("--base", required=True,
                        help=f"git revision to compare with ({BASE_REF} after `reproduce`)")
    parser.add_argument("--pull", action="store_true",
                        help="reproduce: `dvc pull` the raw data from the DVC remote first")
    parser.add_argument("--out", help="comment: write the markdown here (default: stdout)")
    parser.add_argument("--plots", help="comment: render both revisions' plots as PNGs here")
    parser.add_argument("--image-url", help="comment: URL the --plots folder will be served "
                        "from (default: the folder's path, for a local preview)")
    parser.add_argument("--metric", help="gate: key in metrics/<model>.json")
    parser.add_argument("--model", help="gate: model name, or best")
    parser.add_argument("--tolerance", type=float, help="gate: largest allowed worsening")
    parser.add_argument("--direction", choices=DIRECTIONS, help="gate: which way is better")
    args = parser.parse_args(argv)
    try:
        if args.command == "reproduce":
            reproduce(args.base, args.pull)
            return 0
        cfg = gate_settings(args.base)
        metric = args.metric or cfg["metric"]
        model = args.model or cfg["model"]
        tolerance = args.tolerance if args.tolerance is not None else cfg["tolerance"]
        direction = args.direction or cfg["direction"]
        diffs = model_metrics(args.base)
        ok, line = gate(diffs, args.base, metric, model, tolerance, direction)
        if args.command == "comment":
            text = comment(args.base, diffs, args.plots, line, args.image_url)
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
