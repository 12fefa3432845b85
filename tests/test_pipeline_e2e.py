"""`dvc repro` and `dvc exp run` of the real dvc.yaml, with tiny params, in a temporary clone."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, tiny_overrides
from helpers import tree_digest

pytestmark = pytest.mark.e2e
MODELS = ("baseline", "balanced", "cnn11", "resnet34")
OUTPUTS = ("data/", "models/", "dvclive/", "eval/", "metrics/", "reports/")  # made by dvc repro
INPUTS = ("data/v7labs_lung_masks.csv",)  # ships with the project, among the outputs


def run(repo: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def dvc(repo: Path, *args: str) -> str:
    return run(repo, sys.executable, "-m", "dvc", *args)


def metrics_bytes(repo: Path) -> dict[str, bytes]:
    return {m: (repo / "metrics" / f"{m}.json").read_bytes() for m in MODELS}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file() and (not rel.startswith(OUTPUTS) or rel in INPUTS):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    params = tiny_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "tiny")
    dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "repro")
    return repo


def test_repro_writes_all_metrics_and_leaves_status_clean(repo):
    for model in MODELS:
        m = json.loads((repo / "metrics" / f"{model}.json").read_text())
        t = m["test"]
        assert t["tn"] + t["fp"] + t["fn"] + t["tp"] == m["images"]["test"] == 32
        assert 0 <= t["accuracy"] <= 1 and 0 <= m["threshold"] <= 1
        assert m["test_ci95"]["accuracy"]["lo"] <= t["accuracy"] <= m["test_ci95"]["accuracy"]["hi"]
        assert (repo / "models" / f"{model}.threshold.json").is_file()
    assert json.loads((repo / "metrics" / "resnet34.json").read_text())["weights"] == "none"
    logged = yaml.safe_load((repo / "dvclive/cnn11/params.yaml").read_text())
    assert logged["precision"] in ("bf16", "fp32")  # resolved, never "auto"
    # 48 px phantoms, prepare.image_size 64 and cnn11.image_size 64: nothing is upsampled
    assert json.loads((repo / "metrics/split.json").read_text())["cache"] == {
        "image_size": 64, "side": 48}
    assert (logged["image_size"], logged["input_size"], logged["cache_size"]) == (64, 48, 48)
    assert torch.load(repo / "models/cnn11.pt", weights_only=True)["image_size"] == 48
    assert "up to date" in dvc(repo, "status")
    lr = json.loads((repo / "dvclive/resnet34/plots/custom/lr.json").read_text())
    n_train = yaml.safe_load((repo / "dvclive/resnet34/params.yaml").read_text())["train_images"]
    assert len(lr) == 2 * math.ceil(n_train / 16)  # two one-epoch phases, batch size 16
    assert max(p["lr"] for p in lr) <= 0.003 + 1e-9
    shown = dvc(repo, "metrics", "show", "--json")
    assert "metrics/cnn11.json" in shown
    summary = (repo / "reports" / "summary.md").read_text()
    assert "| CNN8 (`baseline`) | 76% |" in summary and "| 156 |" in summary
    assert summary.count("McNemar") >= 1 and "`cnn11` → `resnet34`" in summary
    audit = json.loads((repo / "metrics" / "cnn11.json").read_text())["audit"]
    assert set(audit) == {"clean", "centre_removed", "centre_only", "border_only",
                          "lungs_removed", "lungs_only", "saliency"}
    external = json.loads((repo / "metrics" / "cnn11.json").read_text())["external"]
    assert external["source"] == "synthetic" and external["images"] == 24
    assert external["tn"] + external["fp"] + external["fn"] + external["tp"] == 24
    assert set(external["strata"]) == {"under_18", "view_AP", "view_PA"}
    assert set(external["audit"]) == {"clean", "lungs_removed", "lungs_only", "saliency"}
    segment = json.loads((repo / "metrics" / "segment.json").read_text())
    assert segment["test"]["with_mask"] == 32 and 0 <= segment["test"]["dice_mean"] <= 1
    lungs = np.load(repo / "data/lungs/external.npy")
    assert lungs.shape == (24, 48, 48) and set(np.unique(lungs)) <= {0, 1}
    assert "## Another hospital" in summary
    assert audit["clean"]["roc_auc"] == json.loads(
        (repo / "metrics" / "cnn11.json").read_text())["test"]["roc_auc"]
    shortcuts = json.loads((repo / "metrics" / "shortcuts.json").read_text())
    assert 0 <= shortcuts["metadata"]["test_roc_auc"] <= 1
    assert "## What the models look at" in summary and "figures/gradcam_resnet34.png" in summary
    assert (repo / "reports/figures/gradcam_resnet34.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("model", MODELS)
def test_predict_labels_every_test_image_as_evaluate_did(repo, model):
    """cxr-predict on the raw test files: the same score and the same call as
    eval/<model>/predictions.csv, and as the confusion counts in metrics/<model>.json."""
    with (repo / "eval" / model / "predictions.csv").open(newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    raw = repo / "data/raw/chest_xray"
    out = run(repo, "cxr-predict", "--model", f"models/{model}.pt", str(raw / "test"), "--json")
    predicted = {Path(r["path"]).relative_to(raw).as_posix(): r for r in json.loads(out)}
    assert sorted(predicted) == sorted(rows)
    for path, row in rows.items():
        assert predicted[path]["probability"] == float(row["probability"]), path
        assert predicted[path]["label"] == ("PNEUMONIA" if row["predicted"] == "1"
                                            else "NORMAL"), path
    m = json.loads((repo / "metrics" / f"{model}.json").read_text())
    threshold = json.loads((repo / "models" / f"{model}.threshold.json").read_text())
    assert m["threshold"] == threshold["threshold"]
    calls = [(int(r["label"]), int(r["predicted"])) for r in rows.values()]
    assert calls.count((1, 1)) == m["test"]["tp"] and calls.count((0, 1)) == m["test"]["fp"]
    assert all(int(r["predicted"]) == (float(r["probability"]) >= m["threshold"])
               for r in rows.values())


def outputs_digest(repo: Path) -> dict[str, str]:
    """Every file the pipeline writes: data, checkpoints, thresholds, predictions, plot data,
    dvclive logs, metrics, the report, and dvc.lock."""
    digest = {"dvc.lock": tree_digest(repo)["dvc.lock"]}
    for folder in OUTPUTS:
        digest.update({f"{folder}{k}": v for k, v in tree_digest(repo / folder).items()})
    return digest


def test_repro_force_rewrites_every_output_byte_for_byte(repo):
    before = outputs_digest(repo)
    assert any(k.startswith("models/") and k.endswith(".pt") for k in before)
    assert any(k.endswith("predictions.csv") for k in before)
    assert any(k.startswith("dvclive/") and k.endswith(".tsv") for k in before)
    dvc(repo, "repro", "-f")
    after = outputs_digest(repo)
    assert sorted(after) == sorted(before)
    assert [k for k in before if after[k] != before[k]] == []


def stale(repo: Path) -> set[str]:
    return set(json.loads(dvc(repo, "status", "--json")))


def test_status_sees_code_and_seed_changes(repo):
    """A change to the package's __init__ (CLASSES, MODELS) stales every stage; the training
    seed stales training, evaluation and the report, never the data, the split or the lung
    masks; the lung region (prepare.roi) stales training (and so what follows) and the report
    (the model card names it), not the cache or the masks."""
    init = repo / "cxr" / "__init__.py"
    original = init.read_text()
    try:
        init.write_text(original + "# edited\n")
        assert stale(repo) == {"acquire", "prepare", "shortcuts", "external", "segment",
                               "train_baseline",
                               "train_balanced", "train_cnn11", "finetune_resnet34",
                               *(f"evaluate@{m}" for m in MODELS), "report"}
    finally:
        init.write_text(original)
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    try:
        params = yaml.safe_load(original)
        params["seed"] = 7
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        trained_on = {"train_baseline", "train_balanced", "train_cnn11", "finetune_resnet34",
                      *(f"evaluate@{m}" for m in MODELS), "report"}
        assert stale(repo) == trained_on
        params["seed"] = 42
        params["prepare"]["roi"] = "full"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        assert stale(repo) == {s for s in trained_on if not s.startswith("evaluate")}
    finally:
        params_file.write_text(original)
    assert stale(repo) == set()


def test_exp_run_weighted_reruns_only_the_baseline(repo):
    before = metrics_bytes(repo)
    out = dvc(repo, "exp", "run", "-S", "sampler=weighted")
    assert "Running stage 'train_baseline'" in out
    for other in ("train_balanced", "train_cnn11", "finetune_resnet34", "evaluate@cnn11"):
        assert f"Running stage '{other}'" not in out
    after = metrics_bytes(repo)
    assert after["baseline"] != before["baseline"]
    assert all(after[m] == before[m] for m in MODELS if m != "baseline")
    diff = json.loads(dvc(repo, "metrics", "diff", "--json"))
    assert "metrics/baseline.json" in diff
    assert not any(f"metrics/{m}.json" in diff for m in MODELS if m != "baseline")
    assert "sampler" in dvc(repo, "exp", "show", "--no-pager", "--md")
    table = run(repo, "cxr-experiments", "--model", "baseline", "--metric", "test.accuracy")
    acc = {v: json.loads(b)["test"]["accuracy"] for v, b in (("(params.yaml)", before["baseline"]),
                                                           ("sampler=weighted", after["baseline"]))}
    for variant, value in acc.items():
        assert f"| {variant} | 1 | 42 | {value:.4f} ({value:.4f}–{value:.4f}) |" in table


@pytest.mark.parametrize("roi", ["lungs_mask", "full"])
def test_every_lung_region_predicts_as_evaluate_scored_it(repo, roi):
    """The default (`lungs_crop`) is checked above for every model; here the baseline trains
    on the other regions, and cxr-predict (segmenting each raw test file with the U-Net the
    checkpoint carries, where the region needs one) gives exactly the scores of
    eval/baseline/predictions.csv. (Last: they change the workspace.)"""
    before = metrics_bytes(repo)["baseline"]
    out = dvc(repo, "exp", "run", "-S", f"prepare.roi={roi}", "evaluate@baseline")
    assert "Running stage 'train_baseline'" in out and "Running stage 'segment'" not in out
    assert metrics_bytes(repo)["baseline"] != before
    ckpt = torch.load(repo / "models/baseline.pt", weights_only=True)
    assert ckpt["preprocess"]["roi"] == roi and ("segmenter" in ckpt) == (roi != "full")
    test_predict_labels_every_test_image_as_evaluate_did(repo, "baseline")
