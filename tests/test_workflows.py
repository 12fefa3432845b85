"""The GitHub workflows are linted here, so a broken workflow fails CI before it reaches
GitHub: the workflow JSON schema (check-jsonschema) and Actions security audits (zizmor)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yaml"))
BIN = Path(sys.executable).parent


def schema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True)


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("zizmor", path=str(BIN)) or shutil.which("zizmor")
    assert exe, "zizmor is not installed; pip install -r requirements.txt"
    return subprocess.run([exe, "--offline", "--no-progress", *map(str, paths)],
                          capture_output=True, text=True)


def test_workflows_pass_schema_and_security_lint():
    assert len(WORKFLOWS) == 2
    proc = schema(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = zizmor(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


BROKEN = {
    # a step with both `uses` and `run`, and a misspelt key
    "schema": "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
              "      - uses: actions/checkout@v4\n        run: echo hi\n    timeout: 5\n",
    # untrusted PR code checked out and run with a write token
    "security": "on: pull_request_target\npermissions:\n  contents: write\njobs:\n  a:\n"
                "    runs-on: ubuntu-latest\n    steps:\n"
                "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1\n"
                "        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
                "      - run: echo \"${{ github.event.pull_request.title }}\" && make\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_the_linters_catch_broken_workflows(tmp_path, kind):
    path = tmp_path / ".github/workflows/bad.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(BROKEN[kind])
    proc = schema(path) if kind == "schema" else zizmor(path)
    assert proc.returncode != 0


def test_only_the_comment_workflow_writes_and_it_runs_no_pr_code():
    pipeline = yaml.safe_load((ROOT / ".github/workflows/pr.yaml").read_text())
    comment = yaml.safe_load((ROOT / ".github/workflows/pr-comment.yaml").read_text())
    assert pipeline["permissions"] == {"contents": "read"}
    for job in pipeline["jobs"].values():
        assert "write" not in {v for k, v in job.get("permissions", {}).items()
                               if k != "id-token"}
    assert set(comment[True]) == {"workflow_run"}  # YAML 1.1 reads `on` as True
    steps = [s for job in comment["jobs"].values() for s in job["steps"]]
    assert not any("checkout" in s.get("uses", "") for s in steps)
    assert all("pip" not in s.get("run", "") and "python" not in s.get("run", "")
               for s in steps)
