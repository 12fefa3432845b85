"""The pull-request loop against temporary git + DVC repositories: comment, plots, gate, and
`reproduce`, which puts base and head through one machine."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
           GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", DVC_NO_ANALYTICS="1",
           PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
MODELS = ("baseline", "cnn11")
PLOTS = [{"ROC (test)": {"template": "simple", "x": "fpr",
                         "y": {f"eval/{m}/plots/sklearn/roc.json": "tpr" for m in MODELS},
                         "x_label": "false positive rate", "y_label": "true positive rate"}}]
# A one-stage pipeline whose results follow params.yaml: what `reproduce` must rerun.
STAGE = '''
import json, pathlib, yaml
lr = yaml.safe_load(open("params.yaml"))["cnn11"]["lr"]
auc = round(1 - 10 * lr, 4)
for model, value in (("baseline", 0.90), ("cnn11", auc)):
    roc = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.1, "tpr": value}, {"fpr": 1.0, "tpr": 1.0}]
    folder = pathlib.Path(f"eval/{model}/plots/sklearn")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roc.json").write_text(json.dumps({"roc": roc}))
    pathlib.Path("metrics").mkdir(exist_ok=True)
    pathlib.Path(f"metrics/{model}.json").write_text(json.dumps({"test": {"roc_auc": value}}))
'''


def sh(repo, *args, check=True):
    proc = subprocess.run(args, cwd=repo, env=ENV, capture_output=True, text=True)
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def write_results(repo, cnn11_auc: float | None, lr: float, gate: dict | None = None):
    """Results as if produced elsewhere: metrics and ROC points, and the params."""
    for model, value in (("baseline", 0.90), ("cnn11", cnn11_auc)):
        folder = repo / f"eval/{model}/plots/sklearn"
        folder.mkdir(parents=True, exist_ok=True)
        roc = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.1, "tpr": value or 0},
               {"fpr": 1.0, "tpr": 1.0}]
        (folder / "roc.json").write_text(json.dumps({"roc": roc}))
        (repo / "metrics").mkdir(exist_ok=True)
        test = {"roc_auc": value, **({"accuracy": 0.8} if model == "cnn11" else {})}
        loss = {"log_loss": round(1 - value, 4) if value is not None else None}
        (repo / f"metrics/{model}.json").write_text(json.dumps({"test": test,
                                                                "val_in_sample": loss}))
    (repo / "params.yaml").write_text(yaml.safe_dump({
        "cnn11": {"lr": lr}, "gate": gate or {"metric": "test.roc_auc", "model": "best",
                                              "tolerance": 0.01}}))


def init(repo: Path, pipeline: dict) -> None:
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({**pipeline, "plots": PLOTS}))


@pytest.fixture
def repo(tmp_path):
    """Committed results only (no stage): base on main, the PR on a branch."""
    init(tmp_path, {"metrics": [f"metrics/{m}.json" for m in MODELS],
                    "params": ["params.yaml"]})
    write_results(tmp_path, 0.95, 0.003)
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "base")
    sh(tmp_path, "git", "checkout", "-qb", "pr")
    return tmp_path


def pr(repo, *args):
    return sh(repo, sys.executable, "-m", "cxr.pr", *args, check=False)


def test_comment_shows_changed_metrics_and_params(repo):
    write_results(repo, 0.93, 0.001)
    proc = pr(repo, "comment", "--base", "main", "--out", "comment.md")
    assert proc.returncode == 0, proc.stderr
    text = (repo / "comment.md").read_text()
    assert "metrics/cnn11.json" in text and "0.95" in text and "0.93" in text
    assert "cnn11.lr" in text and "0.003" in text and "0.001" in text
    assert "gate FAILS" in text
    assert "may come from another machine" in text  # committed base: not like for like
    headline = text.split("### Headline metrics")[1].split("<details>")[0]
    assert "| `baseline` | – | 0.9000 | – |" in headline  # unchanged: one value
    assert "| `cnn11` | 0.8000 | 0.9500 → **0.9300** | – |" in headline


def test_comment_plots_both_revisions_from_the_plot_definition(repo):
    write_results(repo, 0.97, 0.001)
    url = "https://example.org/pr-plots/runs/7"
    proc = pr(repo, "comment", "--base", "main", "--out", "comment.md", "--plots", "plots",
              "--image-url", url)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((repo / "plots/plots.json").read_text())["ROC (test)"]
    assert all({"fpr", "tpr"} <= set(row) for row in rows)
    assert {row["rev"] for row in rows} == {"main", "workspace"}
    points = {(row["rev"], row["filename"].split("/")[0]): row["tpr"]
              for row in rows if row["fpr"] == 0.1}
    assert points == {("main", "baseline"): 0.9, ("main", "cnn11"): 0.95,
                      ("workspace", "baseline"): 0.9, ("workspace", "cnn11"): 0.97}
    assert (repo / "plots/roc.png").read_bytes()[:4] == b"\x89PNG"
    assert f"![ROC (test)]({url}/roc.png)" in (repo / "comment.md").read_text()


def test_gate_fails_on_a_drop_beyond_tolerance(repo):
    write_results(repo, 0.93, 0.003)  # best model on main is cnn11: 0.95 -> 0.93
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 1
    assert "FAILS: test.roc_auc of cnn11 0.9500 -> 0.9300" in proc.stdout


@pytest.mark.parametrize("auc", [0.945, 0.94, 0.97])
def test_gate_passes_within_tolerance_or_on_a_rise(repo, auc):
    """0.95 -> 0.94 is a drop of exactly the tolerance (0.01): "more than" it fails, not it."""
    write_results(repo, auc, 0.003)
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passes" in proc.stdout


def test_gate_fails_just_past_the_tolerance(repo):
    write_results(repo, 0.9399, 0.003)
    assert pr(repo, "gate", "--base", "main").returncode == 1


def test_gate_settings_come_from_the_base_not_the_pr(repo):
    """A PR that loosens its own gate is still judged by the base's."""
    write_results(repo, 0.90, 0.003, gate={"metric": "test.roc_auc", "model": "best",
                                           "tolerance": 0.5})
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 1 and "tolerance 0.01" in proc.stdout


@pytest.mark.parametrize("auc", [None, "missing"])
def test_gate_fails_closed_on_a_missing_or_nan_metric(repo, auc):
    write_results(repo, None, 0.003)  # NaN is written as null by cxr.metrics.rounded
    if auc == "missing":
        (repo / "metrics/cnn11.json").write_text(json.dumps({"test": {"accuracy": 0.8}}))
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 1 and "FAILS" in proc.stdout, proc.stdout + proc.stderr


def test_gate_with_lower_is_better_fails_when_the_metric_rises(tmp_path):
    """Validation log loss (the default gate): lower is better, and the best model is the
    one with the lowest value on the base."""
    gate = {"metric": "val_in_sample.log_loss", "direction": "lower", "model": "best",
            "tolerance": 0.01}
    init(tmp_path, {"metrics": [f"metrics/{m}.json" for m in MODELS],
                    "params": ["params.yaml"]})
    write_results(tmp_path, 0.95, 0.003, gate=gate)  # log loss: baseline 0.10, cnn11 0.05
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "base")
    write_results(tmp_path, 0.93, 0.003, gate=gate)  # cnn11's log loss 0.05 -> 0.07
    proc = pr(tmp_path, "gate", "--base", "main")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "val_in_sample.log_loss of cnn11 0.0500 -> 0.0700" in proc.stdout
    write_results(tmp_path, 0.97, 0.003, gate=gate)  # 0.05 -> 0.03: better
    assert pr(tmp_path, "gate", "--base", "main").returncode == 0


def test_gate_on_a_named_model_and_metric(repo):
    write_results(repo, 0.93, 0.003)
    proc = pr(repo, "gate", "--base", "main", "--model", "baseline")
    assert proc.returncode == 0 and "baseline 0.9000 -> 0.9000" in proc.stdout
    proc = pr(repo, "gate", "--base", "main", "--metric", "test.f1")
    assert proc.returncode == 2 and "test.f1" in proc.stderr


def test_reproduce_compares_two_runs_of_this_machine(tmp_path):
    """main commits results its code does not produce (0.99, as if from another machine);
    `reproduce` reruns main in a worktree, so the base side is what this machine makes of
    main (0.97), and the PR side is this machine's run of the PR (0.99)."""
    repo = tmp_path
    init(repo, {"stages": {"results": {
        "cmd": "python stage.py", "deps": ["stage.py"], "params": ["cnn11.lr"],
        "metrics": [{f"metrics/{m}.json": {"cache": False}} for m in MODELS],
        "plots": [{f"eval/{m}/plots/sklearn/roc.json": {"cache": False}} for m in MODELS]}}})
    (repo / "stage.py").write_text(STAGE)
    write_results(repo, 0.99, 0.003)  # committed, not reproduced: the code gives 0.97
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "base")
    main_sha = sh(repo, "git", "rev-parse", "main").stdout.strip()
    sh(repo, "git", "checkout", "-qb", "pr")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["cnn11"]["lr"] = 0.001
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    proc = pr(repo, "reproduce", "--base", "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = pr(repo, "comment", "--base", "refs/pr/base", "--out", "comment.md",
              "--plots", "plots")
    assert proc.returncode == 0, proc.stderr
    text = (repo / "comment.md").read_text()
    assert "Like for like" in text and main_sha[:12] in text
    diff = json.loads(sh(repo, sys.executable, "-m", "dvc", "metrics", "diff", "refs/pr/base",
                         "--json").stdout)
    assert diff["metrics/cnn11.json"]["test.roc_auc"] == {"old": 0.97, "new": 0.99,
                                                          "diff": pytest.approx(0.02)}
    rows = json.loads((repo / "plots/plots.json").read_text())["ROC (test)"]
    assert {row["rev"] for row in rows} == {"refs/pr/base", "workspace"}
    assert sh(repo, "git", "rev-parse", "main").stdout.strip() == main_sha  # main untouched
    assert sh(repo, "git", "worktree", "list").stdout.count("\n") == 1  # worktree removed
    assert pr(repo, "gate", "--base", "refs/pr/base").returncode == 0


def test_reproduce_pulls_the_raw_data_from_the_remote_when_asked(tmp_path):
    """Data the runner cannot make (here `dvc add`-ed, in CI a real dataset) come from the DVC
    remote with --pull, on both sides; without it the run fails, never silently."""
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()
    init(repo, {"vars": [{"raw": "raw"}], "stages": {"results": {
        "cmd": "python -c \"import json, pathlib; n = len(list(pathlib.Path('raw').iterdir())); "
               "pathlib.Path('metrics').mkdir(exist_ok=True); pathlib.Path('metrics/cnn11.json')"
               ".write_text(json.dumps({'test': {'roc_auc': n / 10}}))\"",
        "deps": ["raw"], "metrics": [{"metrics/cnn11.json": {"cache": False}}]}}})
    (repo / "raw").mkdir()
    for i in range(3):
        (repo / "raw" / f"{i}.txt").write_text(str(i))
    sh(repo, sys.executable, "-m", "dvc", "add", "-q", "raw")
    sh(repo, sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(remote))
    sh(repo, sys.executable, "-m", "dvc", "repro", "-q")
    sh(repo, sys.executable, "-m", "dvc", "push", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "base")
    sh(repo, "git", "checkout", "-qb", "pr")
    shutil.rmtree(repo / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")  # a fresh runner: nothing but git and the remote

    proc = pr(repo, "reproduce", "--base", "main")
    assert proc.returncode == 2 and "dvc repro" in proc.stderr
    proc = pr(repo, "reproduce", "--base", "main", "--pull")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diff = json.loads(sh(repo, sys.executable, "-m", "dvc", "metrics", "diff", "refs/pr/base",
                         "--json").stdout or "{}")
    assert diff == {}  # both sides made from the same pulled data: nothing changed
    assert json.loads((repo / "metrics/cnn11.json").read_text()) == {"test": {"roc_auc": 0.3}}
