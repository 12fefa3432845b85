"""The GitHub workflows are linted here, so a broken workflow fails CI before it reaches
GitHub: the workflow JSON schema (check-jsonschema) and Actions security audits (zizmor). Their
shell steps are run here too, under the shell GitHub would use, with `gh` and `git` stubbed:
the gate's pipe, the docs-only decision, the required check, and the comment job's checks of
the untrusted artifact."""

import os
import re
import shutil
import stat
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


RULES = {"schema": "Additional properties are not allowed ('timeout' was unexpected)",
         "security": "error[template-injection]"}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_the_linters_catch_broken_workflows(tmp_path, kind):
    """Each linter fails for the rule it exists for, not for a crash or a wrong path."""
    path = tmp_path / ".github/workflows/bad.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(BROKEN[kind])
    proc = schema(path) if kind == "schema" else zizmor(path)
    assert proc.returncode != 0
    assert RULES[kind] in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_only_the_comment_workflow_writes_and_it_runs_no_pr_code():
    pipeline = yaml.safe_load((ROOT / ".github/workflows/pr.yaml").read_text())
    comment = yaml.safe_load((ROOT / ".github/workflows/pr-comment.yaml").read_text())
    assert pipeline["permissions"] == {"contents": "read"}
    for job in pipeline["jobs"].values():
        assert "write" not in {v for k, v in job.get("permissions", {}).items()
                               if k != "id-token"}
    assert set(comment[True]) == {"workflow_run"}  # YAML 1.1 reads `on` as True
    # runs finishing together push to pr-plots one after the other, none cancelled
    assert comment["concurrency"]["cancel-in-progress"] is False
    steps = [s for job in comment["jobs"].values() for s in job["steps"]]
    assert not any("checkout" in s.get("uses", "") for s in steps)
    assert all("pip" not in s.get("run", "") and "python" not in s.get("run", "")
               for s in steps)



# --- the workflows' shell steps, run as GitHub runs them -----------------------------------

# What GitHub runs a `run:` step with, by its `shell` (none given: bash -e, without pipefail).
SHELLS = {None: ["bash", "-e"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"]}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())


def shell_of(workflow: dict, job: dict, step: dict) -> list[str]:
    shell = (step.get("shell") or job.get("defaults", {}).get("run", {}).get("shell")
             or workflow.get("defaults", {}).get("run", {}).get("shell"))
    assert shell in SHELLS, f"no GitHub shell rule known here for {shell!r}"
    return SHELLS[shell]


def run_step(workflow: dict, job: dict, step: dict, cwd: Path, values: dict[str, str],
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """One `run:` step in `cwd`: its env's ${{ }} expressions from `values` (an expression
    the test does not know fails the test), stubs first on PATH, GITHUB_OUTPUT in cwd."""
    assert not EXPRESSION.search(step["run"]), "expressions belong in env, not in run"
    env = {k: EXPRESSION.sub(lambda m: values[m.group(1)], str(v))
           for k, v in step.get("env", {}).items()}
    script = cwd / ".step.sh"
    script.write_text(step["run"])
    return subprocess.run([*shell_of(workflow, job, step), str(script)], cwd=cwd,
                          capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{cwd / 'bin'}{os.pathsep}"
                               f"{os.environ['PATH']}", "GITHUB_OUTPUT": str(cwd / "output"),
                               "GITHUB_REPOSITORY": "owner/repo", **env, **(extra_env or {})})


def stub(cwd: Path, name: str, body: str) -> None:
    (cwd / "bin").mkdir(exist_ok=True)
    path = cwd / "bin" / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def piped_steps():
    for name in ("pr.yaml", "pr-comment.yaml"):
        workflow = load(name)
        for job_name, job in workflow["jobs"].items():
            for step in job["steps"]:
                if re.search(r"(?<!\|)\|(?!\|)", step.get("run", "")):
                    yield name, workflow, job_name, job, step


def test_every_step_that_pipes_runs_with_pipefail():
    steps = list(piped_steps())
    assert any("cxr-pr gate" in s[-1]["run"] for s in steps)
    for name, workflow, job_name, job, step in steps:
        assert "pipefail" in shell_of(workflow, job, step), f"{name} {job_name}: {step}"


def test_the_gate_step_fails_when_the_gate_fails(tmp_path):
    """`cxr-pr gate ... | tee`: the step's status must be the gate's, not tee's."""
    workflow = load("pr.yaml")
    job = workflow["jobs"]["repro"]
    step = next(s for s in job["steps"] if "cxr-pr gate" in s.get("run", ""))
    (tmp_path / "pr").mkdir()
    for code, ok in ((0, True), (1, False)):
        stub(tmp_path, "cxr-pr", f"echo 'gate verdict'; exit {code}\n")
        proc = run_step(workflow, job, step, tmp_path, {})
        assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
        assert (tmp_path / "pr/gate.txt").read_text() == "gate verdict\n"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.mark.parametrize("files, code", [
    (["README.md", "docs/experiments.md", "docs/pr-comment-example/roc.png"], "false"),
    (["README.md", "cxr/train.py"], "true"),
    (["params.yaml"], "true"),
])
def test_changes_job_skips_only_markdown_and_docs(tmp_path, files, code):
    workflow = load("pr.yaml")
    job = workflow["jobs"]["changes"]
    step = next(s for s in job["steps"] if s.get("id") == "diff")
    (tmp_path / "base.txt").write_text("base")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("changed")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "pr")
    proc = run_step(workflow, job, step, tmp_path, {})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "output").read_text() == f"code={code}\n"


@pytest.mark.parametrize("code, changes, lint, repro, ok", [
    ("false", "success", "skipped", "skipped", True),   # docs-only PR: the check passes
    ("true", "success", "success", "success", True),
    ("true", "success", "success", "failure", False),   # the gate failed in repro
    ("true", "success", "failure", "skipped", False),
    ("true", "success", "skipped", "skipped", False),   # code changed but nothing ran
    ("", "failure", "skipped", "skipped", False),
])
def test_required_check_reports_on_every_pr(tmp_path, code, changes, lint, repro, ok):
    workflow = load("pr.yaml")
    job = workflow["jobs"]["result"]
    assert set(job["needs"]) == set(workflow["jobs"]) - {"result"}
    values = {"needs.changes.outputs.code": code, "needs.changes.result": changes,
              "needs.lint-test.result": lint, "needs.repro.result": repro}
    proc = run_step(workflow, job, job["steps"][0], tmp_path, values)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    assert "paths-ignore" not in str(workflow[True]["pull_request"] or {})


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
EVENT = {"github.token": "token", "github.event.workflow_run.head_sha": "abc123",
         "github.event.workflow_run.head_repository.full_name": "fork/repo",
         "github.event.workflow_run.head_repository.owner.login": "fork",
         "github.event.workflow_run.head_branch": "feature", "github.event.workflow_run.id": "99"}


def comment_job(tmp_path: Path, api: str, number: bytes = b"7\n", comment: bytes = b"# ok\n",
                plots: dict[str, bytes] | None = None, nothing_new: bool = False):
    """The comment job's steps in order (the artifact laid out as downloaded), with `gh` and
    `git` stubbed: `gh api` answers `api` (the PR numbers its --jq filter would print).
    Returns the return code of the first failing step (or 0) and every stubbed call."""
    workflow = load("pr-comment.yaml")
    job = workflow["jobs"]["comment"]
    artifact = tmp_path / "pr"
    (artifact / "plots").mkdir(parents=True)
    (artifact / "number").write_bytes(number)
    (artifact / "comment.md").write_bytes(comment)
    for name, data in (plots or {}).items():
        (artifact / "plots" / name).write_bytes(data)
    calls = tmp_path / "calls"
    stub(tmp_path, "gh", f'echo "gh $*" >> {calls}\n[ "$1" != api ] || printf "{api}"\n')
    stub(tmp_path, "git", f'echo "git $*" >> {calls}\ncase "$1" in\n'
         '  init) mkdir -p "${@: -1}" ;;\n  fetch) exit 1 ;;\n'
         f'  diff) exit {0 if nothing_new else 1} ;;\nesac\n')
    values = dict(EVENT)
    for step in job["steps"]:
        if "uses" in step:
            continue
        proc = run_step(workflow, job, step, tmp_path, values)
        if proc.returncode != 0:
            return proc.returncode, calls.read_text() if calls.exists() else ""
        if "id" in step and (tmp_path / "output").exists():
            for line in (tmp_path / "output").read_text().splitlines():
                key, _, value = line.partition("=")
                values[f"steps.{step['id']}.outputs.{key}"] = value
    return 0, calls.read_text()


def test_comment_goes_to_the_pr_of_the_event_with_checked_plots(tmp_path):
    code, calls = comment_job(tmp_path, "7", plots={"roc.png": PNG,
                                                     "precision_recall.png": b"<svg/>",
                                                     "other.png": PNG})
    assert code == 0, calls
    assert "gh api -X GET repos/owner/repo/pulls -f state=open -f head=fork:feature" in calls
    assert sorted(p.name for p in (tmp_path / "vetted/plots").iterdir()) == ["roc.png"]
    assert "git push -q origin HEAD:refs/heads/pr-plots" in calls
    assert calls.rstrip().endswith("gh pr comment 7 --repo owner/repo --body-file "
                                   "vetted/comment.md --edit-last --create-if-none")


@pytest.mark.parametrize("api, number, comment", [
    ("7", b"8\n", b"# ok\n"),            # the artifact names another PR
    ("7", b"7; rm -rf /\n", b"# ok\n"),
    ("", b"7\n", b"# ok\n"),             # no open PR at the run's head
    ("7\\n9", b"7\n", b"# ok\n"),        # two PRs: ambiguous
    ("7", b"7\n", b"x" * 60001),         # comment over the size limit
])
def test_comment_refuses_an_artifact_that_does_not_match(tmp_path, api, number, comment):
    code, calls = comment_job(tmp_path, api, number, comment, plots={"roc.png": PNG})
    assert code != 0
    assert "gh pr comment" not in calls and "git push" not in calls


def test_comment_without_plots_or_new_bytes_still_comments(tmp_path):
    code, calls = comment_job(tmp_path, "7")  # no plots folder content
    assert code == 0 and "git " not in calls and "gh pr comment 7" in calls
    code, calls = comment_job(tmp_path / "rerun", "7", plots={"roc.png": PNG}, nothing_new=True)
    assert code == 0 and "git push" not in calls and "commit" not in calls
    assert "gh pr comment 7" in calls
