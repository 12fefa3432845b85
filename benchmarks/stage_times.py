"""Run every stage of dvc.yaml in order, without DVC, and print each stage's wall time.

    python benchmarks/stage_times.py [-S key=value ...] [--only prepare,train_cnn11]

For timing (DVC itself prints no per-stage times) and for machines where DVC is not installed,
such as a lent GPU box. `-S` overrides params.yaml for the run, like `dvc exp run -S`;
params.yaml is restored afterwards. For tracked results use `dvc repro` / `dvc exp run`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cxr.commands import run_stage
from cxr.params import set_param

ROOT = Path(__file__).resolve().parents[1]


def stage_commands(dvc_yaml: dict) -> list[tuple[str, str]]:
    """(name, command) of every stage, with `vars` and `foreach` expanded, in file order."""
    variables = {k: v for entry in dvc_yaml.get("vars", []) for k, v in entry.items()}
    out = []
    for name, stage in dvc_yaml["stages"].items():
        items = stage.get("foreach", [None])
        for item in items:
            cmd = (stage["do"] if item is not None else stage)["cmd"]
            for key, value in {**variables, "item": item}.items():
                cmd = cmd.replace("${" + key + "}", str(value))
            out.append((f"{name}@{item}" if item is not None else name, cmd))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-S", dest="overrides", action="append", default=[])
    parser.add_argument("--only", help="comma-separated stage names (default: all)")
    args = parser.parse_args()
    params_file = ROOT / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    for assignment in args.overrides:
        set_param(params, assignment)
    stages = stage_commands(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    if args.only:
        wanted = args.only.split(",")
        stages = [(n, c) for n, c in stages if n in wanted or n.split("@")[0] in wanted]
    times = {}
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        for name, cmd in stages:
            print(f"== {name}: {cmd}", flush=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, *shlex.split(cmd)[1:]], cwd=ROOT, check=True)
            times[name] = time.perf_counter() - start
    finally:
        params_file.write_text(original)
        print("\nstage wall times (s):")
        for name, seconds in times.items():
            print(f"  {name:28s} {seconds:8.1f}")
        print(f"  {'total':28s} {sum(times.values()):8.1f}")


if __name__ == "__main__":
    run_stage(main)
