"""The pull-request comment and gate against a temporary git + DVC repository."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
           GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", DVC_NO_ANALYTICS="1")


def sh(repo, *args, check=True):
    proc = subprocess.run(args, cwd=repo, env=ENV, capture_output=True, text=True)
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def write_metrics(repo, cnn11_auc: float, lr: float):
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/baseline.json").write_text(json.dumps({"test": {"roc_auc": 0.90}}))
    (repo / "metrics/cnn11.json").write_text(json.dumps({"test": {"roc_auc": cnn11_auc,
                                                                  "accuracy": 0.8}}))
    (repo / "params.yaml").write_text(yaml.safe_dump({
        "cnn11": {"lr": lr}, "gate": {"metric": "test.roc_auc", "model": "best",
                                      "tolerance": 0.01}}))


@pytest.fixture
def repo(tmp_path):
    sh(tmp_path, "git", "init", "-q", "-b", "main")
    sh(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({
        "metrics": ["metrics/baseline.json", "metrics/cnn11.json"], "params": ["params.yaml"]}))
    write_metrics(tmp_path, 0.95, 0.003)
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "base")
    sh(tmp_path, "git", "checkout", "-qb", "pr")
    return tmp_path


def pr(repo, *args):
    return sh(repo, sys.executable, "-m", "cxr.pr", *args, check=False)


def test_comment_shows_changed_metrics_and_params(repo):
    write_metrics(repo, 0.93, 0.001)
    proc = pr(repo, "comment", "--base", "main", "--out", "comment.md")
    assert proc.returncode == 0, proc.stderr
    text = (repo / "comment.md").read_text()
    assert "metrics/cnn11.json" in text and "0.95" in text and "0.93" in text
    assert "cnn11.lr" in text and "0.003" in text and "0.001" in text
    assert "gate FAILS" in text


def test_gate_fails_on_a_drop_beyond_tolerance(repo):
    write_metrics(repo, 0.93, 0.003)  # best model on main is cnn11: 0.95 -> 0.93
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 1
    assert "FAILS: test.roc_auc of cnn11 0.9500 -> 0.9300" in proc.stdout


@pytest.mark.parametrize("auc", [0.945, 0.97])
def test_gate_passes_within_tolerance_or_on_a_rise(repo, auc):
    write_metrics(repo, auc, 0.003)
    proc = pr(repo, "gate", "--base", "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passes" in proc.stdout


def test_gate_on_a_named_model_and_metric(repo):
    write_metrics(repo, 0.93, 0.003)
    proc = pr(repo, "gate", "--base", "main", "--model", "baseline")
    assert proc.returncode == 0 and "baseline 0.9000 -> 0.9000" in proc.stdout
    proc = pr(repo, "gate", "--base", "main", "--metric", "test.f1")
    assert proc.returncode == 2 and "test.f1" in proc.stderr
